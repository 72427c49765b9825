//! The service-manager files shipped in `systemd/` and `launchd/`.
//!
//! Each file is checked twice: by our own reading of it (the settings the supervisor
//! relies on are present and have the right type), and by the platform's own tool
//! where it is installed (`systemd-analyze verify`, `plutil -lint`). The `*_catches_*`
//! tests feed the same checks a broken copy, so a check that silently passes
//! everything cannot go unnoticed.

use std::error::Error;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn Error>>;

const UNIT_FILE: &str = "systemd/ai-employee.service";
const UNIT_NAME: &str = "ai-employee.service";
const PLIST_FILE: &str = "launchd/com.ai-employee.supervisor.plist";
const PLIST_LABEL: &str = "com.ai-employee.supervisor";

/// Exit codes from `watchers/vault/src/exit_codes.rs` that restarting cannot fix.
const LOCKED: &str = "75";
const CONFIG: &str = "78";
/// The supervisor's default per-child `stop_timeout`, in seconds.
const DEFAULT_CHILD_STOP_TIMEOUT_SECS: u64 = 10;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `name` as found on `$PATH`, if it is there and executable.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------------
// launchd
// ---------------------------------------------------------------------------------

/// Everything wrong with a parsed launchd plist; empty when it is fine.
fn plist_problems(plist: &plist::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(dict) = plist.as_dictionary() else {
        return vec!["the top level is not a <dict>".to_owned()];
    };
    let string = |key: &str| dict.get(key).and_then(plist::Value::as_string);

    match string("Label") {
        Some(PLIST_LABEL) => {}
        other => problems.push(format!("Label is {other:?}, want {PLIST_LABEL:?}")),
    }

    let mut vault_arg = None;
    match dict
        .get("ProgramArguments")
        .and_then(plist::Value::as_array)
    {
        None => problems.push("ProgramArguments is missing or not an <array>".to_owned()),
        Some(values) => {
            let args: Vec<&str> = values.iter().filter_map(plist::Value::as_string).collect();
            if args.len() != values.len() {
                problems.push("ProgramArguments holds something other than <string>s".to_owned());
            }
            // launchd runs argv as given: no shell, no ~ or $HOME expansion.
            match args.first() {
                Some(program) if program.starts_with('/') => {}
                other => problems.push(format!(
                    "ProgramArguments[0] must be an absolute path, got {other:?}"
                )),
            }
            if !args.contains(&"supervise") {
                problems.push(format!(
                    "ProgramArguments {args:?} do not include \"supervise\""
                ));
            }
            vault_arg = args
                .iter()
                .position(|arg| *arg == "--vault")
                .and_then(|at| args.get(at + 1))
                .copied();
            if vault_arg.is_none() {
                problems.push(format!("ProgramArguments {args:?} do not pass --vault DIR"));
            }
        }
    }

    // Restart unless the supervisor exited 0, i.e. after a clean SIGTERM.
    match dict.get("KeepAlive") {
        Some(plist::Value::Dictionary(keep_alive)) => {
            match keep_alive
                .get("SuccessfulExit")
                .and_then(plist::Value::as_boolean)
            {
                Some(false) => {}
                other => problems.push(format!(
                    "KeepAlive.SuccessfulExit is {other:?}, want <false/> (restart unless exit 0)"
                )),
            }
        }
        other => problems.push(format!("KeepAlive is {other:?}, want a <dict>")),
    }

    if dict.get("RunAtLoad").and_then(plist::Value::as_boolean) != Some(true) {
        problems.push("RunAtLoad is not <true/>".to_owned());
    }

    for key in ["StandardOutPath", "StandardErrorPath"] {
        match string(key) {
            Some(path) if path.starts_with('/') && path.contains("/Logs/") => {
                if let Some(vault) = vault_arg {
                    if !path.starts_with(&format!("{vault}/Logs/")) {
                        problems.push(format!("{key} {path:?} is not under {vault}/Logs/"));
                    }
                }
            }
            other => problems.push(format!(
                "{key} is {other:?}, want an absolute path in the vault's Logs/"
            )),
        }
    }

    match dict
        .get("EnvironmentVariables")
        .and_then(plist::Value::as_dictionary)
    {
        None => problems.push("EnvironmentVariables is missing or not a <dict>".to_owned()),
        Some(env) => {
            let var = |key: &str| env.get(key).and_then(plist::Value::as_string);
            match (var("AI_EMPLOYEE_VAULT"), vault_arg) {
                (Some(from_env), Some(from_args)) if from_env != from_args => {
                    problems.push(format!(
                        "AI_EMPLOYEE_VAULT {from_env:?} differs from --vault {from_args:?}"
                    ));
                }
                (None, _) => problems.push("EnvironmentVariables lacks AI_EMPLOYEE_VAULT".into()),
                _ => {}
            }
            if var("PATH").is_none_or(str::is_empty) {
                problems.push("EnvironmentVariables lacks PATH".to_owned());
            }
        }
    }

    if string("ProcessType") != Some("Background") {
        problems.push("ProcessType is not \"Background\"".to_owned());
    }
    let integer = |key: &str| dict.get(key).and_then(plist::Value::as_unsigned_integer);
    // launchd SIGKILLs after ExitTimeOut: leave the supervisor time to stop its children.
    match integer("ExitTimeOut") {
        Some(secs) if secs > DEFAULT_CHILD_STOP_TIMEOUT_SECS => {}
        other => problems.push(format!(
            "ExitTimeOut is {other:?}, want an <integer> above {DEFAULT_CHILD_STOP_TIMEOUT_SECS}"
        )),
    }
    if integer("ThrottleInterval").is_none() {
        problems.push("ThrottleInterval is missing or not an <integer>".to_owned());
    }
    problems
}

#[test]
fn launchd_plist_parses_and_has_the_required_keys() -> TestResult {
    let path = repo_file(PLIST_FILE);
    let plist = plist::Value::from_file(&path)
        .map_err(|err| format!("failed to parse {}: {err}", path.display()))?;
    let problems = plist_problems(&plist);
    assert!(
        problems.is_empty(),
        "{}:\n  {}",
        path.display(),
        problems.join("\n  ")
    );
    Ok(())
}

#[test]
fn launchd_plist_check_catches_a_broken_plist() -> TestResult {
    let text = fs::read_to_string(repo_file(PLIST_FILE))?;
    let broken = text
        .replace("<string>supervise</string>", "<string>superv1se</string>")
        .replace(
            "<key>RunAtLoad</key>\n\t<true/>",
            "<key>RunAtLoad</key>\n\t<string>yes</string>",
        );
    assert!(
        broken != text,
        "the mutation did not apply; update this test"
    );
    let problems = plist_problems(&plist::Value::from_reader_xml(broken.as_bytes())?);
    assert!(
        problems.iter().any(|p| p.contains("supervise"))
            && problems.iter().any(|p| p.contains("RunAtLoad")),
        "both mutations should be reported, got {problems:?}"
    );
    Ok(())
}

#[test]
fn launchd_plist_passes_plutil_lint() -> TestResult {
    let Some(plutil) = find_on_path("plutil") else {
        eprintln!("skipped: plutil is not on PATH (it ships with macOS only)");
        return Ok(());
    };
    let path = repo_file(PLIST_FILE);
    let output = Command::new(plutil).arg("-lint").arg(&path).output()?;
    assert!(
        output.status.success(),
        "plutil -lint {} failed ({}):\n{}",
        path.display(),
        output.status,
        output_text(&output)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------

/// One `Key=Value` assignment of a unit file, in file order.
#[derive(Debug)]
struct Assignment {
    section: String,
    key: String,
    value: String,
    line: usize,
}

/// Reads a unit file the way systemd does for the parts we use: `[Section]` headers,
/// `Key=Value` lines, `#`/`;` comments, blank lines, trailing-backslash continuations.
/// Keys may repeat (`Environment=`); the caller decides what repetition means.
fn parse_unit(text: &str) -> Result<Vec<Assignment>, String> {
    let mut assignments = Vec::new();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let line_no = index + 1;
        let mut line = raw.trim().to_owned();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        while line.ends_with('\\') {
            line.pop();
            line.truncate(line.trim_end().len());
            line.push(' ');
            match lines.next() {
                Some((_, next)) => line.push_str(next.trim()),
                None => return Err(format!("line {line_no}: continuation at end of file")),
            }
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {line_no}: unterminated section header {line:?}"))?;
            section = Some(name.to_owned());
            continue;
        }
        let Some(current) = &section else {
            return Err(format!(
                "line {line_no}: assignment before any [Section]: {line:?}"
            ));
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: not a Key=Value line: {line:?}"))?;
        assignments.push(Assignment {
            section: current.clone(),
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
            line: line_no,
        });
    }
    Ok(assignments)
}

/// Every value assigned to `section`/`key`, in order (an empty assignment resets a
/// list in systemd, so it clears what came before).
fn values<'a>(unit: &'a [Assignment], section: &str, key: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    for a in unit.iter().filter(|a| a.section == section && a.key == key) {
        if a.value.is_empty() {
            found.clear();
        } else {
            found.push(a.value.as_str());
        }
    }
    found
}

/// The effective value of a single-valued setting: the last assignment wins.
fn value<'a>(unit: &'a [Assignment], section: &str, key: &str) -> Option<&'a str> {
    values(unit, section, key).last().copied()
}

/// A systemd time span such as `20s`, `1min 30s` or a bare `20` (seconds), in seconds.
fn parse_timespan(text: &str) -> Option<u64> {
    let mut total = 0;
    for part in text.split_whitespace() {
        let digits_end = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (number, unit) = part.split_at(digits_end);
        let number: u64 = number.parse().ok()?;
        let scale = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hr" | "hour" | "hours" => 3600,
            _ => return None,
        };
        total += number * scale;
    }
    Some(total)
}

/// Everything wrong with the unit's text; empty when it is fine.
fn unit_problems(text: &str) -> Vec<String> {
    let unit = match parse_unit(text) {
        Ok(unit) => unit,
        Err(err) => return vec![err],
    };
    let mut problems = Vec::new();
    let mut expect = |key: &str, want: &str| match value(&unit, "Service", key) {
        Some(got) if got == want => {}
        got => problems.push(format!("[Service] {key} is {got:?}, want {want:?}")),
    };
    expect("Type", "notify");
    expect("NotifyAccess", "main");
    expect("KillMode", "mixed");
    expect("Restart", "on-failure");
    if value(&unit, "Install", "WantedBy") != Some("default.target") {
        problems.push("[Install] WantedBy is not default.target (a user unit)".to_owned());
    }

    match value(&unit, "Service", "ExecStart") {
        Some(exec) if exec.split_whitespace().any(|arg| arg == "supervise") => {}
        other => problems.push(format!(
            "[Service] ExecStart {other:?} does not run `supervise`"
        )),
    }
    match value(&unit, "Service", "ExecReload") {
        Some(exec) if exec.contains("-HUP") && exec.contains("$MAINPID") => {}
        other => problems.push(format!(
            "[Service] ExecReload {other:?} does not send SIGHUP to $MAINPID"
        )),
    }
    if !values(&unit, "Service", "Environment")
        .iter()
        .any(|env| env.trim_matches('"').starts_with("AI_EMPLOYEE_VAULT="))
    {
        problems.push("[Service] Environment does not set AI_EMPLOYEE_VAULT".to_owned());
    }

    let prevent: Vec<&str> = values(&unit, "Service", "RestartPreventExitStatus")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    for code in [LOCKED, CONFIG] {
        if !prevent.contains(&code) {
            problems.push(format!(
                "[Service] RestartPreventExitStatus {prevent:?} lacks {code}"
            ));
        }
    }

    match value(&unit, "Service", "WatchdogSec").map(|v| (v, parse_timespan(v))) {
        Some((_, Some(secs))) if secs > 0 => {}
        other => problems.push(format!(
            "[Service] WatchdogSec is {other:?}, want a time span > 0"
        )),
    }
    match value(&unit, "Service", "TimeoutStopSec").map(|v| (v, parse_timespan(v))) {
        Some((_, Some(secs))) if secs > DEFAULT_CHILD_STOP_TIMEOUT_SECS => {}
        other => problems.push(format!(
            "[Service] TimeoutStopSec is {other:?}, want more than the children's \
             {DEFAULT_CHILD_STOP_TIMEOUT_SECS}s stop_timeout"
        )),
    }
    // The vault lives in $HOME: hiding or freezing $HOME would break every start.
    match value(&unit, "Service", "ProtectHome") {
        None | Some("no" | "false" | "0" | "off") => {}
        Some(other) => problems.push(format!(
            "[Service] ProtectHome={other} hides or freezes the vault in $HOME"
        )),
    }
    if let Some(strict) = unit
        .iter()
        .find(|a| a.section == "Service" && a.key == "ProtectSystem" && a.value == "strict")
    {
        problems.push(format!(
            "line {}: ProtectSystem=strict makes the vault in $HOME read-only",
            strict.line
        ));
    }
    problems
}

#[test]
fn systemd_unit_has_the_required_settings() -> TestResult {
    let path = repo_file(UNIT_FILE);
    let problems = unit_problems(&fs::read_to_string(&path)?);
    assert!(
        problems.is_empty(),
        "{}:\n  {}",
        path.display(),
        problems.join("\n  ")
    );
    Ok(())
}

#[test]
fn systemd_unit_check_catches_a_broken_unit() -> TestResult {
    let text = fs::read_to_string(repo_file(UNIT_FILE))?;
    let broken = text
        .replace("KillMode=mixed", "KillMode=control-group")
        .replace(
            "RestartPreventExitStatus=2 75 78",
            "RestartPreventExitStatus=2 75",
        )
        .replace("WatchdogSec=60s", "WatchdogSec=soon");
    assert!(
        broken != text,
        "the mutations did not apply; update this test"
    );
    let problems = unit_problems(&broken);
    for needle in ["KillMode", "lacks 78", "WatchdogSec"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "expected a problem mentioning {needle:?}, got {problems:?}"
        );
    }
    Ok(())
}

#[test]
fn unit_parser_handles_continuations_comments_and_resets() -> TestResult {
    let unit = parse_unit(
        "# comment\n[Service]\n; also a comment\nExecStart=/bin/true \\\n  supervise\n\
         Environment=A=1\nEnvironment=\nEnvironment=B=2\n",
    )?;
    assert_eq!(
        value(&unit, "Service", "ExecStart"),
        Some("/bin/true supervise")
    );
    assert_eq!(values(&unit, "Service", "Environment"), vec!["B=2"]);
    assert!(
        parse_unit("Type=notify\n").is_err(),
        "assignment outside a section"
    );
    assert!(
        parse_unit("[Service]\nType notify\n").is_err(),
        "line without '='"
    );
    assert_eq!(parse_timespan("1min 30s"), Some(90));
    assert_eq!(parse_timespan("20"), Some(20));
    assert_eq!(parse_timespan("soon"), None);
    Ok(())
}

/// What `systemd-analyze verify` said about a unit.
struct Verdict {
    success: bool,
    /// Lines of its output that name our unit: warnings and errors about it.
    about_unit: Vec<String>,
    command: String,
    output: String,
}

/// Runs `systemd-analyze verify` on `unit_text` saved as `ai-employee.service` in a
/// temporary directory, in user mode as the unit is meant to be installed.
///
/// What makes it work without a running systemd (a container, CI):
/// - `--user` needs `$XDG_RUNTIME_DIR`; a private temporary one is enough.
/// - `--man=no`: `Documentation=man:` pages need not be installed.
/// - `--generators=no`: generators need privileges and only add unrelated units.
/// - `--recursive-errors=no` (systemd >= 250): judge this unit only, not the state of
///   every unit it pulls in (default.target's dependencies on this machine).
/// - `SYSTEMD_LOG_LEVEL=warning`: whatever it prints is a warning or an error; the
///   lines that name our file are about us, the rest are about the host.
fn systemd_analyze_verify(
    systemd_analyze: &Path,
    unit_text: &str,
) -> Result<Verdict, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let runtime_dir = dir.path().join("runtime");
    fs::create_dir(&runtime_dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&runtime_dir, fs::Permissions::from_mode(0o700))?;
    }
    let unit_path = dir.path().join(UNIT_NAME);
    fs::write(&unit_path, unit_text)?;

    let mut args: Vec<&OsStr> = vec![
        OsStr::new("verify"),
        OsStr::new("--user"),
        OsStr::new("--man=no"),
        OsStr::new("--generators=no"),
    ];
    if systemd_version(systemd_analyze).is_some_and(|v| v >= 250) {
        args.push(OsStr::new("--recursive-errors=no"));
    }
    args.push(unit_path.as_os_str());

    let output = Command::new(systemd_analyze)
        .args(&args)
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "cat")
        .output()?;
    let text = output_text(&output);
    Ok(Verdict {
        success: output.status.success(),
        about_unit: text
            .lines()
            .filter(|line| line.contains(UNIT_NAME))
            .map(str::to_owned)
            .collect(),
        command: format!(
            "{} {}",
            systemd_analyze.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        output: text,
    })
}

/// The major version from `systemd-analyze --version` ("systemd 252 (252.38-1~deb12u1)").
fn systemd_version(systemd_analyze: &Path) -> Option<u32> {
    let output = Command::new(systemd_analyze)
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The shipped unit with `ExecStart=` pointing at the binary under test, which
/// `verify` requires to exist (`%h/.cargo/bin/ai-employee` is not installed here).
fn unit_with_built_binary() -> Result<String, Box<dyn Error>> {
    let text = fs::read_to_string(repo_file(UNIT_FILE))?;
    // Quoted for spaces in the path; `%` would start a specifier.
    let binary = env!("CARGO_BIN_EXE_ai-employee").replace('%', "%%");
    let mut replaced = 0;
    let rewritten: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix("ExecStart=") {
            Some(command) => {
                replaced += 1;
                let args = command
                    .split_once(char::is_whitespace)
                    .map_or("", |(_, rest)| rest);
                format!("ExecStart=\"{binary}\" {args}")
            }
            None => line.to_owned(),
        })
        .collect();
    if replaced != 1 {
        return Err(format!("{UNIT_FILE}: expected one ExecStart= line, found {replaced}").into());
    }
    Ok(rewritten.join("\n") + "\n")
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() -> TestResult {
    let Some(systemd_analyze) = find_on_path("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not on PATH (not a systemd system)");
        return Ok(());
    };
    let verdict = systemd_analyze_verify(&systemd_analyze, &unit_with_built_binary()?)?;
    assert!(
        verdict.success && verdict.about_unit.is_empty(),
        "`{}` rejected {UNIT_FILE}:\n  {}\nfull output:\n{}",
        verdict.command,
        verdict.about_unit.join("\n  "),
        verdict.output
    );
    Ok(())
}

#[test]
fn systemd_analyze_verify_catches_a_broken_unit() -> TestResult {
    let Some(systemd_analyze) = find_on_path("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not on PATH (not a systemd system)");
        return Ok(());
    };
    // A misspelt directive is only a warning to systemd, and the unit still "works"
    // with the default KillMode: exactly what must not slip through.
    let good = unit_with_built_binary()?;
    let broken = good.replace("KillMode=mixed", "KilMode=mixed");
    assert!(
        broken != good,
        "the mutation did not apply; update this test"
    );
    let verdict = systemd_analyze_verify(&systemd_analyze, &broken)?;
    assert!(
        verdict
            .about_unit
            .iter()
            .any(|line| line.contains("KilMode")),
        "`{}` did not report the misspelt KilMode=; output:\n{}",
        verdict.command,
        verdict.output
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// The worker's units (docs/workers.md)
// ---------------------------------------------------------------------------------

const WORKER_UNIT_FILE: &str = "systemd/ai-employee-worker.service";
const WORKER_PLIST_FILE: &str = "launchd/com.ai-employee.worker.plist";

/// Everything wrong with the worker's unit; empty when it is fine.
fn worker_unit_problems(text: &str) -> Vec<String> {
    let unit = match parse_unit(text) {
        Ok(unit) => unit,
        Err(err) => return vec![err],
    };
    let mut problems = Vec::new();
    for (key, want) in [("KillMode", "mixed"), ("Restart", "on-failure")] {
        if value(&unit, "Service", key) != Some(want) {
            problems.push(format!("[Service] {key} is not {want}"));
        }
    }
    match value(&unit, "Service", "ExecStart") {
        Some(exec) if exec.split_whitespace().nth(1) == Some("worker") => {}
        other => problems.push(format!(
            "[Service] ExecStart {other:?} does not run `worker`"
        )),
    }
    let env = values(&unit, "Service", "Environment");
    for var in ["AI_EMPLOYEE_QUEUE=", "AI_EMPLOYEE_QUEUE_CREDENTIALS="] {
        if !env.iter().any(|e| e.trim_matches('"').starts_with(var)) {
            problems.push(format!("[Service] Environment does not set {var}"));
        }
    }
    if env.iter().any(|e| e.contains('@')) {
        problems.push("[Service] a queue URL with a user or password in the unit".into());
    }
    let prevent: Vec<&str> = values(&unit, "Service", "RestartPreventExitStatus")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    if !prevent.contains(&CONFIG) {
        problems.push(format!("[Service] RestartPreventExitStatus lacks {CONFIG}"));
    }
    // The worker waits for its agents' kill_after (10 s by default) when it stops.
    match value(&unit, "Service", "TimeoutStopSec").and_then(parse_timespan) {
        Some(secs) if secs > 30 => {}
        other => problems.push(format!("[Service] TimeoutStopSec {other:?}, want > 30s")),
    }
    if value(&unit, "Install", "WantedBy") != Some("default.target") {
        problems.push("[Install] WantedBy is not default.target (a user unit)".to_owned());
    }
    problems
}

#[test]
fn worker_unit_has_the_required_settings_and_the_check_catches_a_broken_one() -> TestResult {
    let text = fs::read_to_string(repo_file(WORKER_UNIT_FILE))?;
    let problems = worker_unit_problems(&text);
    assert!(
        problems.is_empty(),
        "{WORKER_UNIT_FILE}:\n  {}",
        problems.join("\n  ")
    );
    let broken = text
        .replace("ai-employee worker", "ai-employee wroker")
        .replace(
            "RestartPreventExitStatus=2 78",
            "RestartPreventExitStatus=2",
        );
    assert_ne!(broken, text, "the mutation did not apply; update this test");
    let problems = worker_unit_problems(&broken);
    assert_eq!(problems.len(), 2, "{problems:?}");
    Ok(())
}

#[test]
fn worker_unit_passes_systemd_analyze_verify() -> TestResult {
    let Some(systemd_analyze) = find_on_path("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not on PATH (not a systemd system)");
        return Ok(());
    };
    let text = fs::read_to_string(repo_file(WORKER_UNIT_FILE))?;
    let binary = env!("CARGO_BIN_EXE_ai-employee").replace('%', "%%");
    let text = text.replace(
        "ExecStart=%h/.cargo/bin/ai-employee ",
        &format!("ExecStart=\"{binary}\" "),
    );
    assert!(text.contains(&binary), "ExecStart= was not rewritten");
    let verdict = systemd_analyze_verify(&systemd_analyze, &text)?;
    assert!(
        verdict.success && verdict.about_unit.is_empty(),
        "`{}` rejected {WORKER_UNIT_FILE}:\n  {}\nfull output:\n{}",
        verdict.command,
        verdict.about_unit.join("\n  "),
        verdict.output
    );
    Ok(())
}

#[test]
fn worker_plist_parses_and_has_the_required_keys() -> TestResult {
    let path = repo_file(WORKER_PLIST_FILE);
    let plist = plist::Value::from_file(&path)?;
    let dict = plist.as_dictionary().ok_or("not a <dict>")?;
    let string = |key: &str| dict.get(key).and_then(plist::Value::as_string);
    assert_eq!(string("Label"), Some("com.ai-employee.worker"));
    let args: Vec<&str> = dict
        .get("ProgramArguments")
        .and_then(plist::Value::as_array)
        .ok_or("no ProgramArguments")?
        .iter()
        .filter_map(plist::Value::as_string)
        .collect();
    assert!(args[0].starts_with('/'), "{args:?}");
    assert_eq!(args.get(1), Some(&"worker"));
    for flag in ["--queue", "--credentials", "--work-dir"] {
        let at = args.iter().position(|a| *a == flag).ok_or(flag)?;
        let v = args.get(at + 1).ok_or(flag)?;
        assert!(!v.starts_with("--") && !v.contains('@'), "{flag} {v}");
    }
    // The command line parses (the placeholders are values, not flags).
    let out = Command::new(env!("CARGO_BIN_EXE_ai-employee"))
        .args(&args[1..])
        .arg("--help")
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let keep = dict
        .get("KeepAlive")
        .and_then(plist::Value::as_dictionary)
        .and_then(|k| k.get("SuccessfulExit"))
        .and_then(plist::Value::as_boolean);
    assert_eq!(keep, Some(false));
    assert_eq!(
        dict.get("RunAtLoad").and_then(plist::Value::as_boolean),
        Some(true)
    );
    let exit = dict
        .get("ExitTimeOut")
        .and_then(plist::Value::as_unsigned_integer);
    assert!(exit.is_some_and(|s| s > 30), "ExitTimeOut {exit:?}");
    for key in ["StandardOutPath", "StandardErrorPath"] {
        assert!(string(key).is_some_and(|p| p.starts_with('/')), "{key}");
    }
    if let Some(plutil) = find_on_path("plutil") {
        let output = Command::new(plutil).arg("-lint").arg(&path).output()?;
        assert!(output.status.success(), "{}", output_text(&output));
    }
    Ok(())
}
