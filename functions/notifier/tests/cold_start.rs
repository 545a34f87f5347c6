//! Runs the built `notifier` binary without configuration: the cold start fails with a non-zero
//! exit and names every missing variable in the log.

use std::process::{Command, Stdio};

#[test]
fn missing_configuration_fails_cold_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_notifier"))
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("notifier runs");
    assert!(!output.status.success(), "a cold start without configuration fails");

    let stdout = String::from_utf8_lossy(&output.stdout);
    for variable in ["TABLE_NAME", "OTP_ISSUER", "EMAIL_FROM", "KEYS_SECRET_ID"] {
        assert!(stdout.contains(variable), "{variable} is named in the log: {stdout}");
    }
}
