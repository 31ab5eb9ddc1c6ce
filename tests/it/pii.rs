//! `enclave pii scan`: a folder swept for exposed identifiers without
//! ingesting anything; findings masked, exit status 1 when anything is found.

use crate::common::enclave;

#[test]
fn pii_scan_reports_masked_findings_and_exits_one() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(share.join("letters")).unwrap();
    std::fs::write(
        share.join("letters/referral.txt"),
        "Referral letter\n\nPatient: John Smith, DOB: 14/03/1962, NHS number 943 476 5919.\n\
         SSN 123-45-6789. Mail john.smith@example.org.\n\
         Order number 4111 1111 1111 1111 shipped; ISBN 978-0-306-40615-7.\n",
    )
    .unwrap();
    std::fs::write(
        share.join("notes.md"),
        "# Notes\n\nUpgrade to version 1.2.3.4 on Monday.\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let out = enclave(&data)
        .args(["pii", "scan", "--json"])
        .arg(&share)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for secret in [
        "123-45-6789",
        "943 476 5919",
        "john.smith@example.org",
        "14/03/1962",
    ] {
        assert!(
            !stdout.contains(secret),
            "{secret} printed in the clear: {stdout}"
        );
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let letter = lines
        .iter()
        .find(|l| {
            l["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("referral.txt"))
        })
        .expect("a line for the letter");
    let mut kinds: Vec<&str> = letter["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["date_of_birth", "email", "nhs_number", "ssn"],
        "{letter}"
    );
    let ssn = letter["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "ssn")
        .unwrap();
    assert_eq!(ssn["masked"], "•••-••-6789");
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["files_with_findings"], 1);
    assert_eq!(summary["findings"], 4);

    // A folder with nothing sensitive: exit 0.
    let clean = enclave(&data)
        .args(["pii", "scan"])
        .arg(share.join("notes.md"))
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("0 findings"));
}
