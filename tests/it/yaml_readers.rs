//! Frontmatter read back by a real YAML 1.1 reader (PyYAML, Debian's python3-yaml) and by
//! serde_norway (YAML 1.2): every string comes back as that string, every number as that
//! number. Also end to end: task notes of the filesystem watcher for files whose names a
//! YAML 1.1 reader would otherwise type.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ai_employee_vault::frontmatter;
use serde_json::Value as Json;
use serde_norway::{Mapping, Number, Value};

use crate::common::{WatcherProc, wait_until};

/// A Python with PyYAML: Debian's /usr/bin/python3 (python3-yaml), else the first
/// `python3` on PATH that has it.
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        for py in ["/usr/bin/python3", "python3"] {
            let ok = Command::new(py)
                .args(["-c", "import yaml"])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return py.to_string();
            }
        }
        panic!("no python3 with PyYAML: apt-get install python3-yaml (tests/run.sh does)");
    })
}

/// Read the frontmatter of the file at `path` with PyYAML's `safe_load` and describe every
/// node with its Python type: `{"t": "str", "v": "yes"}`, `{"t": "float", "v": "12.5"}`,
/// `{"t": "dict", "v": [[key, value], …]}`, `{"t": "list", "v": […]}`.
pub fn pyyaml(path: &Path) -> Json {
    const SCRIPT: &str = r#"
import json, sys, yaml
text = open(sys.argv[1], encoding="utf-8").read()
assert text.startswith("---\n"), "no frontmatter"
end = text.index("\n---\n", 3)
data = yaml.safe_load(text[4:end + 1])
def node(x):
    t = type(x).__name__
    if isinstance(x, dict):
        return {"t": t, "v": [[node(k), node(v)] for k, v in x.items()]}
    if isinstance(x, list):
        return {"t": t, "v": [node(i) for i in x]}
    if isinstance(x, str):
        return {"t": t, "v": x}
    return {"t": t, "v": repr(x)}
print(json.dumps(node(data)))
"#;
    let out = Command::new(python())
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "PyYAML could not read {}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

/// The value of `key` in a PyYAML mapping node (keys compared as strings).
pub fn py_get<'a>(map: &'a Json, key: &str) -> &'a Json {
    map["v"]
        .as_array()
        .and_then(|pairs| {
            pairs
                .iter()
                .find(|p| p[0]["t"] == "str" && p[0]["v"] == key)
        })
        .map(|p| &p[1])
        .unwrap_or_else(|| panic!("no {key:?} in {map}"))
}

/// Strings that YAML 1.1 or 1.2 readers type when written plain: every 1.1 bool, null,
/// int, float and timestamp form (with signs and case variants), 1.2's octal and
/// exponent forms, merge and value keys; and look-alikes that are strings anyway.
fn tricky_strings() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for w in ["y", "yes", "n", "no", "true", "false", "on", "off", "null"] {
        let mut cap = w.to_string();
        cap[..1].make_ascii_uppercase();
        v.extend([w.to_string(), cap, w.to_ascii_uppercase()]);
    }
    v.extend(["", "~", "<<", "=", ".nan", ".NaN", ".NAN"].map(String::from));
    let numbers = [
        "0",
        "7",
        "17",
        "017",
        "0o17",
        "0x1F",
        "0x1f",
        "0x_1F",
        "0b1010",
        "0b1_0",
        "1_000",
        "190:20:30",
        "12:30:00",
        "1:30",
        "0123",
        "99999999999999999999999999",
        "1.5",
        "1.",
        ".5",
        "1e3",
        "1E3",
        "1e+3",
        "1.0e-3",
        "6.8523015e+5",
        "685.230_15e+03",
        "685_230.15",
        "190:20:30.15",
        "1.2.3",
        "1_000.5",
        ".inf",
        ".Inf",
        ".INF",
    ];
    for sign in ["", "-", "+"] {
        v.extend(numbers.iter().map(|n| format!("{sign}{n}")));
    }
    v.extend(
        [
            "2026-01-01",
            "2026-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-15T02:59:43.1Z",
            "2001-12-15 2:59:43.10",
            "2001-12-14T21:59:43+01:00",
            "2026-11-21T23:59:01.250Z",
            // Look-alikes: strings to every reader, must stay so.
            "yess",
            "nope",
            "2026-01-01.pdf",
            "2026-01-01 notes",
            "0x",
            "1e",
            "12:30 meeting",
            "report.pdf",
            "1.5 kg",
            "Ünïcödé 🚀",
            "a: b",
            "- x",
            "#tag",
            "'quoted'",
            "\"dq\"",
            "multi\nline",
            "trailing ",
            " leading",
            "aiq0z0q",
            "aiq1z",
        ]
        .map(String::from),
    );
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

#[test]
fn tricky_strings_and_numbers_read_back_the_same_in_pyyaml_and_serde_norway() {
    let strings = tricky_strings();
    let floats = [
        12.5,
        120.5,
        0.1,
        1e20,
        1e-7,
        2.5e-7,
        1.0,
        -3.25,
        1e300,
        123456789.125,
    ];
    let ints: [i64; 4] = [0, -3, 42, i64::MIN];
    let mut values = Mapping::new();
    let mut keys = Mapping::new();
    for (i, s) in strings.iter().enumerate() {
        frontmatter::set(&mut values, &format!("k{i}"), s.as_str());
        keys.insert(
            Value::String(s.clone()),
            Value::Number(Number::from(i as u64)),
        );
    }
    let mut numbers = Mapping::new();
    for (i, f) in floats.iter().enumerate() {
        frontmatter::set(&mut numbers, &format!("f{i}"), *f);
    }
    for (i, n) in ints.iter().enumerate() {
        frontmatter::set(&mut numbers, &format!("i{i}"), *n);
    }
    frontmatter::set(&mut numbers, "u", u64::MAX);
    frontmatter::set(&mut numbers, "amount", frontmatter::decimal("12.5"));
    frontmatter::set(&mut numbers, "amount_exact", frontmatter::decimal("120.50"));
    let list = Value::Sequence(strings.iter().cloned().map(Value::String).collect());
    let mut front = Mapping::new();
    frontmatter::set(&mut front, "values", values);
    frontmatter::set(&mut front, "keys", keys);
    frontmatter::set(&mut front, "list", list);
    frontmatter::set(&mut front, "numbers", numbers);
    let text = frontmatter::render(&front, "body\n");

    // serde_norway (YAML 1.2): the same document.
    let doc = frontmatter::parse(&text).expect("parses");
    assert_eq!(doc.front, front, "{text}");

    // PyYAML (YAML 1.1).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("note.md");
    std::fs::write(&path, &text).expect("write");
    let py = pyyaml(&path);
    let mut wrong = Vec::new();
    let py_values = py_get(&py, "values");
    for (i, s) in strings.iter().enumerate() {
        let got = py_get(py_values, &format!("k{i}"));
        if got["t"] != "str" || got["v"] != s.as_str() {
            wrong.push(format!("value {s:?} read as {got}"));
        }
    }
    let py_keys = py_get(&py, "keys")["v"].as_array().expect("keys");
    assert_eq!(py_keys.len(), strings.len());
    for (pair, s) in py_keys.iter().zip(&strings) {
        if pair[0]["t"] != "str" || pair[0]["v"] != s.as_str() {
            wrong.push(format!("key {s:?} read as {}", pair[0]));
        }
    }
    let py_list = py_get(&py, "list")["v"].as_array().expect("list");
    for (got, s) in py_list.iter().zip(&strings) {
        if got["t"] != "str" || got["v"] != s.as_str() {
            wrong.push(format!("list item {s:?} read as {got}"));
        }
    }
    let py_numbers = py_get(&py, "numbers");
    for (i, f) in floats.iter().enumerate() {
        let got = py_get(py_numbers, &format!("f{i}"));
        let back: Option<f64> = got["v"].as_str().and_then(|v| v.parse().ok());
        if got["t"] != "float" || back != Some(*f) {
            wrong.push(format!("float {f:?} read as {got}"));
        }
    }
    for (i, n) in ints.iter().enumerate() {
        let got = py_get(py_numbers, &format!("i{i}"));
        if got["t"] != "int" || got["v"] != n.to_string().as_str() {
            wrong.push(format!("int {n} read as {got}"));
        }
    }
    let u = py_get(py_numbers, "u");
    assert_eq!(
        (u["t"].as_str(), u["v"].as_str()),
        (Some("int"), Some("18446744073709551615"))
    );
    for (key, want) in [("amount", "12.5"), ("amount_exact", "120.5")] {
        let got = py_get(py_numbers, key);
        assert_eq!(
            (got["t"].as_str(), got["v"].as_str()),
            (Some("float"), Some(want)),
            "{key}"
        );
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
}

#[test]
fn file_drop_notes_for_names_a_yaml_1_1_reader_would_type_keep_them_strings() {
    let dir = tempfile::Builder::new()
        .prefix("aie-yaml-")
        .tempdir()
        .expect("tempdir");
    let vault = dir.path().join("vault");
    std::fs::create_dir_all(vault.join("Inbox")).expect("Inbox");
    // Hidden names (`.inf`) and `~` are not taken by the watcher; the rest are.
    let names = [
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "true",
        "null",
        "2026-01-01",
        "0o17",
        "0x1F",
        "1_000",
        "1e3",
        "12:30:00",
        "017",
        "1.5",
        "-1",
        "=",
        "<<",
    ];
    for n in names {
        std::fs::write(vault.join("Inbox").join(n), n).expect("drop");
    }
    let mut w = WatcherProc::spawn("filesystem", &vault, &[]);
    let notes = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(vault.join("Needs_Action"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "md"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || notes().len() == names.len()),
        "{} notes:\n{}",
        notes().len(),
        w.log()
    );
    w.stop_clean(Duration::from_secs(15));
    let mut seen = Vec::new();
    for note in notes() {
        let py = pyyaml(&note);
        let name = py_get(&py, "original_name");
        assert_eq!(name["t"], "str", "{}: {name}", note.display());
        let received = py_get(&py, "received");
        assert_eq!(received["t"], "str", "{}: {received}", note.display());
        let size = py_get(&py, "size");
        assert_eq!(size["t"], "int", "{}: {size}", note.display());
        seen.push(name["v"].as_str().unwrap_or_default().to_string());
    }
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}
