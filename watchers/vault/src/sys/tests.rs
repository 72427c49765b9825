use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A temporary folder, open.
fn folder() -> io::Result<(tempfile::TempDir, OwnedFd)> {
    folder_with(&[])
}

/// A temporary folder, open, with `files` (path, text) written in it.
fn folder_with(files: &[(&str, &str)]) -> io::Result<(tempfile::TempDir, OwnedFd)> {
    let t = tempfile::tempdir()?;
    for (rel, text) in files {
        let path = t.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(t.path()))?;
        std::fs::write(path, text)?;
    }
    let fd = open(t.path(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    Ok((t, fd))
}

fn name(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn text(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

#[test]
fn a_noreplace_rename_refuses_an_existing_target() -> io::Result<()> {
    let (t, d) = folder_with(&[("a", "A"), ("b", "B")])?;
    let d = d.as_fd();
    match rename_noreplace(At::new(d, name("a")), At::new(d, name("b"))) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::AlreadyExists),
        // Only where the file system has no such rename; then nothing may have changed.
        Ok(renamed) => assert!(!renamed, "replaced an existing name"),
    }
    assert_eq!(
        (text(&t.path().join("a"))?, text(&t.path().join("b"))?),
        ("A".into(), "B".into())
    );
    if rename_noreplace(At::new(d, name("a")), At::new(d, name("c")))? {
        assert!(!t.path().join("a").exists());
        assert_eq!(text(&t.path().join("c"))?, "A");
    }
    Ok(())
}

#[test]
fn exchange_swaps_names_across_folders() -> io::Result<()> {
    let (t, d) = folder_with(&[("a", "A"), ("sub/b", "B")])?;
    let sub = open(&t.path().join("sub"), OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let a = At::new(d.as_fd(), name("a"));
    if exchange(a, At::new(sub.as_fd(), name("b")))? {
        assert_eq!(text(&t.path().join("a"))?, "B");
        assert_eq!(text(&t.path().join("sub/b"))?, "A");
    }
    let gone = exchange(a, At::new(sub.as_fd(), name("missing")));
    assert_eq!(gone.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
    Ok(())
}

#[test]
fn the_fallback_walk_refuses_links_too() -> io::Result<()> {
    let (t, root) = folder_with(&[("Inbox/sub/b.txt", "b"), ("secret", "secret")])?;
    symlink(t.path(), t.path().join("Inbox/out"))?;
    let parts = [name("Inbox"), name("out"), name("secret")];
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    assert!(per_component(root.as_fd(), &parts, flags, Mode::empty()).is_err());
    let parts = [name("Inbox"), name("sub"), name("b.txt")];
    let fd = per_component(root.as_fd(), &parts, flags, Mode::empty())?;
    let mut s = String::new();
    File::from(fd).read_to_string(&mut s)?;
    assert_eq!(s, "b");
    Ok(())
}

#[test]
fn opening_beneath_follows_no_link_in_any_component() -> io::Result<()> {
    let (t, root) = folder_with(&[("real/f", "f")])?;
    symlink("real", t.path().join("link"))?;
    symlink("f", t.path().join("real/alias"))?;
    let read = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    assert!(open_beneath(root.as_fd(), &[name("real"), name("f")], read, 0).is_ok());
    for parts in [[name("link"), name("f")], [name("real"), name("alias")]] {
        let e = open_beneath(root.as_fd(), &parts, read, 0).expect_err("a link");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{parts:?}: {e}");
    }
    let e = open_beneath(root.as_fd(), &[name("link")], read, 0).expect_err("a link");
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    Ok(())
}

#[test]
fn a_lock_excludes_a_second_holder_until_dropped() -> io::Result<()> {
    let (t, _d) = folder()?;
    let path = t.path().join("lock");
    let open = || {
        let mut how = File::options();
        how.read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };
    let first = match try_lock(open()?)? {
        TryLock::Locked(l) => l,
        TryLock::Held(_) => panic!("nobody holds it yet"),
    };
    let mut holding = first.file();
    holding.write_all(b"1234\n")?;
    // The second open file description is refused and gets its file back.
    let mut second = match try_lock(open()?)? {
        TryLock::Locked(_) => panic!("locked twice"),
        TryLock::Held(f) => f,
    };
    let mut holder = String::new();
    second.read_to_string(&mut holder)?;
    assert_eq!(holder, "1234\n");
    // A waiter gets it only once the first holder is gone.
    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let released = Arc::clone(&released);
        std::thread::spawn(move || lock(second).map(|_| released.load(Ordering::SeqCst)))
    };
    // Time for the waiter to block; the test holds without it, it only has less to see.
    std::thread::sleep(Duration::from_millis(20));
    released.store(true, Ordering::SeqCst);
    drop(first);
    let saw_release = waiter
        .join()
        .map_err(|_| io::Error::other("waiter panicked"))??;
    assert!(saw_release, "the lock was taken while held");
    assert!(matches!(try_lock(open()?)?, TryLock::Locked(_)));
    Ok(())
}

#[test]
#[cfg(target_os = "linux")]
fn a_read_lease_is_refused_while_a_writer_has_the_file() -> io::Result<()> {
    let (t, _d) = folder()?;
    let path = t.path().join("f");
    let writer = File::create(&path)?;
    let reader = File::open(&path)?;
    assert!(matches!(lease(&reader, LeaseKind::Read), Lease::Busy));
    drop(writer);
    assert!(matches!(lease(&reader, LeaseKind::Read), Lease::Held(_)));
    // A second reader does not stand in the way of a read lease, only of a write lease.
    let other = File::open(&path)?;
    assert!(matches!(lease(&reader, LeaseKind::Read), Lease::Held(_)));
    assert!(matches!(lease(&reader, LeaseKind::Write), Lease::Busy));
    drop(other);
    assert!(matches!(lease(&reader, LeaseKind::Write), Lease::Held(_)));
    Ok(())
}

#[test]
#[cfg(target_os = "macos")]
fn there_are_no_leases_on_macos() -> io::Result<()> {
    let (t, _d) = folder()?;
    let f = File::create(t.path().join("f"))?;
    assert!(matches!(lease(&f, LeaseKind::Write), Lease::Unsupported));
    Ok(())
}

#[test]
fn data_and_holes_are_found() -> io::Result<()> {
    const MIB: u64 = 1 << 20;
    let (t, _d) = folder()?;
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(t.path().join("sparse"))?;
    f.set_len(4 * MIB)?;
    std::os::unix::fs::FileExt::write_all_at(&f, b"data", 2 * MIB)?;
    // Whatever the file system knows of holes, data is found at or before the write,
    // a hole (or the end) after it, and nothing past the end.
    let data = seek_data(&f, 0)?.expect("data before the end");
    assert!(data <= 2 * MIB, "{data}");
    let hole = seek_hole(&f, 2 * MIB)?;
    assert!((2 * MIB + 4..=4 * MIB).contains(&hole), "{hole}");
    assert_eq!(seek_data(&f, 4 * MIB)?, None);
    Ok(())
}

#[test]
fn syncfs_is_there_on_linux_only() -> io::Result<()> {
    let (_t, d) = folder()?;
    let done = syncfs(d.as_fd()).map_err(|e| e.kind());
    let want = if cfg!(target_os = "linux") {
        Ok(())
    } else {
        Err(io::ErrorKind::Unsupported)
    };
    assert_eq!(done, want);
    Ok(())
}

#[test]
fn names_are_listed_with_their_kind() -> io::Result<()> {
    let (t, d) = folder_with(&[("f", ""), ("d/x", "")])?;
    symlink("f", t.path().join("l"))?;
    let mut names = list(d.as_fd())?
        .into_iter()
        .map(|(n, k)| {
            let k = k.map_or_else(|| stat_at(At::new(d.as_fd(), &n)).map(|s| s.kind), Ok)?;
            Ok((n, k))
        })
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    let want = [("d", Kind::Dir), ("f", Kind::File), ("l", Kind::Symlink)];
    assert_eq!(names, want.map(|(n, k)| (OsString::from(n), k)));
    Ok(())
}
