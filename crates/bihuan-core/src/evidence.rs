//! 整改佐证材料: what a file attached to a case or a work item is, judged by its bytes (never by its
//! name), the name it is kept under, and what an event records of the files it cites.

use serde_json::{Map, Value};

/// A file attached to a subject, as an event cites it: the hash chain covers its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFile {
    /// The attachment's id.
    pub id: String,
    /// Its name, as kept (sanitised).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl EvidenceFile {
    /// What an event records of it.
    pub fn recorded(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("size".into(), Value::from(self.size));
        m.insert("sha256".into(), Value::String(self.sha256.clone()));
        Value::Object(m)
    }

    /// The file an event recorded (`None`: not the shape [`recorded`](Self::recorded) writes).
    pub fn from_recorded(value: &Value) -> Option<Self> {
        let text = |k: &str| value.get(k)?.as_str().map(str::to_owned);
        Some(Self {
            id: text("id")?,
            name: text("name")?,
            size: value.get("size")?.as_u64()?,
            sha256: text("sha256").filter(|h| is_sha256(h))?,
        })
    }
}

/// Whether `text` is a SHA-256 as kept: 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The kinds of file accepted as evidence, by their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Jpeg,
    Png,
    Pdf,
    /// 版式文档 OFD (GB/T 33190), a zip with `OFD.xml` at its root.
    Ofd,
    /// A Word document (a zip with `word/document.xml`).
    Docx,
    /// An Excel workbook (a zip with `xl/workbook.xml`).
    Xlsx,
}

impl FileType {
    /// Every kind.
    pub const ALL: [FileType; 6] = [
        FileType::Jpeg,
        FileType::Png,
        FileType::Pdf,
        FileType::Ofd,
        FileType::Docx,
        FileType::Xlsx,
    ];

    /// The kind of a media type, exactly as [`FileType::content_type`] writes it.
    pub fn from_content_type(media: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.content_type() == media)
    }

    /// Whether it is a photo (shown as a thumbnail).
    pub fn is_image(self) -> bool {
        matches!(self, FileType::Jpeg | FileType::Png)
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Pdf => "application/pdf",
            FileType::Ofd => "application/ofd",
            FileType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The extension a file of this kind is named with.
    pub fn extension(self) -> &'static str {
        match self {
            FileType::Jpeg => "jpg",
            FileType::Png => "png",
            FileType::Pdf => "pdf",
            FileType::Ofd => "ofd",
            FileType::Docx => "docx",
            FileType::Xlsx => "xlsx",
        }
    }

    /// The kinds accepted, for error messages.
    pub const ACCEPTED: &'static str = "JPEG、PNG、PDF、OFD、DOCX、XLSX";
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A kind known from its first bytes alone.
    Known(FileType),
    /// A zip archive: what it is depends on the entries it holds ([`zip_type`]).
    Zip,
    /// None of the accepted kinds.
    Unsupported,
}

/// How many bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 8;

/// Judges a file by its first bytes (at least [`SNIFF_BYTES`] of them when the file has that many).
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Sniffed::Known(FileType::Jpeg)
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Sniffed::Known(FileType::Png)
    } else if head.starts_with(b"%PDF-") {
        Sniffed::Known(FileType::Pdf)
    } else if head.starts_with(b"PK\x03\x04") {
        Sniffed::Zip
    } else {
        Sniffed::Unsupported
    }
}

/// What a zip archive is, from the names of its entries: OFD, DOCX or XLSX, or none of them (a
/// plain zip is refused: nobody can check what is inside).
pub fn zip_type<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<FileType> {
    let (mut ofd, mut content_types, mut word, mut excel) = (false, false, false, false);
    for name in names {
        match name {
            "OFD.xml" => ofd = true,
            "[Content_Types].xml" => content_types = true,
            "word/document.xml" => word = true,
            "xl/workbook.xml" => excel = true,
            _ => {}
        }
    }
    if ofd {
        Some(FileType::Ofd)
    } else if content_types && word {
        Some(FileType::Docx)
    } else if content_types && excel {
        Some(FileType::Xlsx)
    } else {
        None
    }
}

/// Whether `c` is an invisible formatting character (Unicode category Cf: bidirectional overrides,
/// zero-width characters, the byte-order mark …): a name holding one could show as something else.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// The most entries a zip (OFD, DOCX, XLSX) may list to be looked into: reading its directory costs
/// memory by the entry, and real documents have tens or hundreds.
pub const MAX_ZIP_ENTRIES: u64 = 10_000;

/// How many bytes at a zip's end hold its end-of-central-directory record: 22, and a comment of up
/// to 65,535.
pub const ZIP_TAIL_BYTES: usize = 22 + 65_535;

/// The number of entries a zip's end-of-central-directory record states, from the last bytes of the
/// file (`tail`, at most [`ZIP_TAIL_BYTES`]); `None` when there is no such record, or when it defers
/// to a ZIP64 record (an archive of that size is no document of ours).
pub fn zip_entry_count(tail: &[u8]) -> Option<u64> {
    const SIGNATURE: &[u8; 4] = b"PK\x05\x06";
    let at = tail.windows(4).rposition(|w| w == SIGNATURE)?;
    let record = tail.get(at..at + 22)?;
    let total = u16::from_le_bytes([record[10], record[11]]);
    (total != u16::MAX).then_some(u64::from(total))
}

/// The longest name kept, in characters (the extension included).
pub const MAX_NAME_CHARS: usize = 100;

/// The name a file is kept and offered for download under: the last part of what the client sent
/// (no folders), without control characters, quotes and the characters file systems refuse, no
/// leading dots, at most [`MAX_NAME_CHARS`] characters, and ending in its kind's extension. An
/// empty result becomes `佐证材料.{ext}`.
pub fn sanitize_name(sent: &str, kind: FileType) -> String {
    let last = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_format(*c))
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' | '\'' | ';' | '%' => '_',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim();
    let ext = kind.extension();
    let stem = match trimmed.rsplit_once('.') {
        Some((stem, given)) if given.eq_ignore_ascii_case(ext) => stem,
        Some((stem, given)) if kind == FileType::Jpeg && given.eq_ignore_ascii_case("jpeg") => stem,
        _ => trimmed,
    };
    // No hidden file: a name never starts with a dot.
    let stem = stem.trim().trim_start_matches('.').trim();
    let budget = MAX_NAME_CHARS - ext.chars().count() - 1;
    let stem: String = stem.chars().take(budget).collect();
    let stem = stem.trim();
    if stem.is_empty() {
        format!("佐证材料.{ext}")
    } else {
        format!("{stem}.{ext}")
    }
}
