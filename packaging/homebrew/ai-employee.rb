# Homebrew formula for ai-employee (macOS and Linuxbrew). Not tested here: the project's
# CI runs on Linux without Homebrew; docs/operations.md, "Packages", says what was checked.
#
#   brew install --HEAD ./packaging/homebrew/ai-employee.rb
#   brew services start ai-employee        # launchd agent: `supervise` on ~/AI_Employee_Vault
#
# The project has no public home yet: set REPO below to the git URL you publish it at (a
# release would rather set `url` to its tarball and `sha256`); `brew install --HEAD` then
# builds that repository's main branch.
REPO = "https://git.example.invalid/ai-employee.git".freeze

class AiEmployee < Formula
  desc "Process supervisor that keeps a personal AI employee's watchers running"
  homepage REPO
  license "MIT"
  head REPO, branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", "--locked", *std_cargo_args
    # One man page per subcommand, and completions, made by the binary itself.
    mkdir "man-pages" do
      system bin/"ai-employee", "man", "--dir", "."
      man1.install Dir["*.1"]
    end
    generate_completions_from_executable(bin/"ai-employee", "completions")
  end

  # `brew services start ai-employee` writes a launchd agent like
  # launchd/com.ai-employee.supervisor.plist: run at login, restarted when it exits
  # with a failure, logs next to Homebrew's others.
  service do
    run [opt_bin/"ai-employee", "supervise", "--vault", "#{Dir.home}/AI_Employee_Vault"]
    keep_alive successful_exit: false
    log_path var/"log/ai-employee.log"
    error_log_path var/"log/ai-employee.log"
    working_dir Dir.home
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/ai-employee --version")
    system bin/"ai-employee", "init", "--vault", testpath/"vault"
    assert_path_exists testpath/"vault/Dashboard.md"
    system bin/"ai-employee", "check", "--vault", testpath/"vault"
  end
end
