//! 整改佐证材料: a file is judged by its bytes, never its name; the name it is kept under is cleaned;
//! what an event records of a file reads back; a workflow file's evidence fields are checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bihuan_core::evidence::{
    EvidenceFile, FileType, MAX_NAME_CHARS, Sniffed, is_sha256, sanitize_name, sniff,
    zip_entry_count, zip_type,
};

#[test]
fn a_file_is_judged_by_its_first_bytes() {
    let table: [(&[u8], Sniffed); 9] = [
        (
            b"\xFF\xD8\xFF\xE0\x00\x10JFIF",
            Sniffed::Known(FileType::Jpeg),
        ),
        (b"\x89PNG\r\n\x1a\n\0\0", Sniffed::Known(FileType::Png)),
        (b"%PDF-1.7\n", Sniffed::Known(FileType::Pdf)),
        (b"PK\x03\x04\x14\0", Sniffed::Zip),
        // A script named .pdf, an executable, a GIF, text, nothing: none of the accepted kinds.
        (b"#!/bin/sh", Sniffed::Unsupported),
        (b"MZ\x90\0\x03\0", Sniffed::Unsupported),
        (b"GIF89a\x01\0", Sniffed::Unsupported),
        (b"%PD", Sniffed::Unsupported),
        (b"", Sniffed::Unsupported),
    ];
    for (head, expected) in table {
        assert_eq!(sniff(head), expected, "{head:?}");
    }
}

#[test]
fn a_zip_is_what_its_entries_say() {
    let table: [(&[&str], Option<FileType>); 6] = [
        (&["OFD.xml", "Doc_0/Document.xml"], Some(FileType::Ofd)),
        (
            &["[Content_Types].xml", "_rels/.rels", "word/document.xml"],
            Some(FileType::Docx),
        ),
        (
            &[
                "[Content_Types].xml",
                "xl/workbook.xml",
                "xl/worksheets/sheet1.xml",
            ],
            Some(FileType::Xlsx),
        ),
        // A plain archive, or one that only looks like an Office file by a folder's name.
        (&["photo.jpg", "notes.txt"], None),
        (&["word/document.xml"], None),
        (&["docs/OFD.xml"], None),
    ];
    for (names, expected) in table {
        assert_eq!(zip_type(names.iter().copied()), expected, "{names:?}");
    }
}

#[test]
fn a_zips_entries_are_counted_from_its_end_record() {
    // The end-of-central-directory record: signature, disk numbers, entries here and in all, sizes.
    let record = |entries: u16| {
        let mut r = b"PK\x05\x06\0\0\0\0".to_vec();
        r.extend(entries.to_le_bytes());
        r.extend(entries.to_le_bytes());
        r.extend([0u8; 10]);
        r
    };
    let mut file = b"PK\x03\x04 entries ...".to_vec();
    file.extend(record(3));
    assert_eq!(zip_entry_count(&file), Some(3));
    // With a comment after it.
    let mut commented = file.clone();
    commented.extend(b"comment PK");
    assert_eq!(zip_entry_count(&commented), Some(3));
    assert_eq!(zip_entry_count(&record(u16::MAX)), None, "ZIP64");
    assert_eq!(zip_entry_count(b"PK\x03\x04 no end record"), None);
    assert_eq!(zip_entry_count(&record(3)[..20]), None, "cut short");
}

#[test]
fn a_name_is_cleaned_and_ends_in_its_kinds_extension() {
    let long = "整".repeat(300);
    let table: [(&str, FileType, &str); 11] = [
        // A right-to-left override would show "exe.pdf" as "fdp.exe".
        (
            "报告\u{202E}fdp.exe.pdf\u{200B}",
            FileType::Pdf,
            "报告fdp.exe.pdf",
        ),
        ("整改前后对比.jpg", FileType::Jpeg, "整改前后对比.jpg"),
        ("现场照片.JPEG", FileType::Jpeg, "现场照片.jpg"),
        // Judged a PDF by its bytes: named one, whatever it was called.
        ("通知.docx", FileType::Pdf, "通知.docx.pdf"),
        ("../../etc/passwd", FileType::Pdf, "passwd.pdf"),
        (
            r"C:\Users\li\桌面\整改报告.pdf",
            FileType::Pdf,
            "整改报告.pdf",
        ),
        ("a\u{0}b\nc\"<x>|?*.png", FileType::Png, "abc__x____.png"),
        ("...hidden.png", FileType::Png, "hidden.png"),
        ("", FileType::Xlsx, "佐证材料.xlsx"),
        ("   .ofd", FileType::Ofd, "佐证材料.ofd"),
        ("报告 2021 年.pdf", FileType::Pdf, "报告 2021 年.pdf"),
    ];
    for (sent, kind, expected) in table {
        assert_eq!(sanitize_name(sent, kind), expected, "{sent:?}");
    }
    let kept = sanitize_name(&format!("{long}.pdf"), FileType::Pdf);
    assert_eq!(kept.chars().count(), MAX_NAME_CHARS);
    assert!(kept.ends_with(".pdf"));
}

#[test]
fn what_an_event_records_of_a_file_reads_back() {
    let file = EvidenceFile {
        id: "0190c5e2-0000-7000-8000-000000000001".into(),
        name: "整改通知.pdf".into(),
        size: 52_113,
        sha256: "ab".repeat(32),
    };
    assert_eq!(
        EvidenceFile::from_recorded(&file.recorded()),
        Some(file.clone())
    );
    let mut bad = file.recorded();
    bad["sha256"] = serde_json::json!("../x");
    assert_eq!(EvidenceFile::from_recorded(&bad), None);
    assert!(is_sha256(&"0f".repeat(32)));
    assert!(!is_sha256(&"0F".repeat(32)));
    assert!(!is_sha256("abc"));
}

#[test]
fn a_workflow_files_evidence_fields_are_checked() {
    let base = include_str!("../../../workflows/negative-rating.toml");
    let table: [(&str, &str, &str); 3] = [
        (
            "required_when = { field = \"outcome\", equals = \"rectified\" }",
            "required_when = { field = \"outcome\", equals = \"fixed\" }",
            "required_when `outcome` = `fixed`, which is no option",
        ),
        (
            "required = false\nrequired_when = { field = \"outcome\", equals = \"rectified\" }",
            "required_when = { field = \"outcome\", equals = \"rectified\" }",
            "`required_when` needs `required = false`",
        ),
        (
            "label = \"整改佐证材料\"\ntype = \"evidence\"",
            "label = \"整改佐证材料\"\ntype = \"evidence\"\nmax = 0",
            "max 0 is not between 1 and 100",
        ),
    ];
    for (from, to, expected) in table {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let problems = bihuan_core::workflow::load("negative-rating.toml", &text).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
}

#[test]
fn a_workbook_whose_directory_lists_too_many_entries_is_not_read() {
    let mut file = b"PK\x03\x04 entries ...PK\x05\x06\0\0\0\0".to_vec();
    file.extend(60_000u16.to_le_bytes());
    file.extend(60_000u16.to_le_bytes());
    file.extend([0u8; 10]);
    let refused = bihuan_core::sheet::check_inflated(std::io::Cursor::new(file), 1 << 20);
    assert!(
        matches!(&refused, Err(bihuan_core::sheet::SheetError::NotAWorkbook(m)) if m.contains("60000")),
        "{refused:?}"
    );
    let no_directory =
        bihuan_core::sheet::check_inflated(std::io::Cursor::new(b"PK\x03\x04".to_vec()), 1 << 20);
    assert!(matches!(
        no_directory,
        Err(bihuan_core::sheet::SheetError::NotAWorkbook(_))
    ));
}
