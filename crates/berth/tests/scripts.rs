//! The scripts in `scripts/`: checks on their text that need no run (a run builds berth and
//! starts the test bed).

use std::path::PathBuf;

/// Issue 15, item 18: a script that runs berth asks cargo where the binary is, since
/// `CARGO_TARGET_DIR` (or `build.target-dir`) moves it; `target/debug/berth` written out ended
/// in exit 127 after a full build on such machines.
#[test]
fn scripts_ask_cargo_where_the_berth_binary_is() {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let mut checked = 0;
    for entry in std::fs::read_dir(&scripts).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            assert!(
                !code.contains("target/debug/") && !code.contains("target/release/"),
                "{}:{}: a hard-coded target directory: {line}",
                path.display(),
                number + 1
            );
        }
        if text.contains("cargo build") {
            assert!(
                text.contains("--message-format=json"),
                "{} builds berth without asking cargo where it is",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "demo, bench-sync and bench-webhook build berth"
    );
}
