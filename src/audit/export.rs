//! Exports (CSV and JSON Lines) and reading them back for verification.
//!
//! An export is the whole chain: every row, each checkpoint right after the
//! row it signs, and a signed end line with the row count and head hash, so a
//! file cut short, or with lines removed, moved or edited, fails verification
//! at the row concerned. CSV cells that a spreadsheet would run as a formula
//! (= + - @ tab CR) get a leading apostrophe, which the reader removes again,
//! so the hashes still check.

use std::io::{BufRead, Write};

use super::verify::{ExportEnd, Report, Rules, Verifier};
use super::{AuditError, AuditKey, Checkpoint, LogSource, Result, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

const CSV_HEADER: [&str; 15] = [
    "kind",
    "id",
    "at",
    "actor",
    "action",
    "target",
    "outcome",
    "address",
    "document_ids",
    "chunk_ids",
    "detail",
    "prev_hash",
    "hash",
    "public_key",
    "signature",
];

/// Write the whole log read from `log` to `out`, ending with a signed end
/// line. Returns the row count.
pub fn write(
    log: &dyn LogSource,
    key: &AuditKey,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64> {
    let checkpoints = log.checkpoints()?;
    let mut pending = checkpoints.iter().peekable();
    if format == Format::Csv {
        write_csv_line(out, &CSV_HEADER)?;
    }
    let mut rows = 0u64;
    let mut head = (0i64, super::GENESIS.to_string());
    log.for_each_row(&mut |row| {
        // A retention anchor (a checkpoint before the first row) comes first.
        while let Some(cp) = pending.next_if(|cp| cp.upto_id < row.id) {
            write_checkpoint(out, format, cp)?;
        }
        write_row(out, format, &row)?;
        rows += 1;
        while let Some(cp) = pending.next_if(|cp| cp.upto_id <= row.id) {
            write_checkpoint(out, format, cp)?;
        }
        head = (row.id, row.hash);
        Ok(())
    })?;
    let mut end = ExportEnd {
        rows,
        head_id: head.0,
        head_hash: head.1,
        exported_at: crate::time::now_utc(),
        public_key: key.public_hex(),
        signature: String::new(),
    };
    end.signature = key.sign(&end.message());
    match format {
        Format::Jsonl => {
            write_json_line(out, "end", &end)?;
        }
        Format::Csv => {
            let (rows, id) = (end.rows.to_string(), end.head_id.to_string());
            write_csv_line(
                out,
                &[
                    "end",
                    &id,
                    &end.exported_at,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    &rows,
                    "",
                    &end.head_hash,
                    &end.public_key,
                    &end.signature,
                ],
            )?;
        }
    }
    out.flush()?;
    Ok(rows)
}

fn write_row(out: &mut dyn Write, format: Format, row: &Row) -> Result<()> {
    match format {
        Format::Jsonl => {
            write_json_line(out, "row", &row)?;
        }
        Format::Csv => {
            let id = row.id.to_string();
            write_csv_line(
                out,
                &[
                    "row",
                    &id,
                    &row.at,
                    &row.actor,
                    &row.action,
                    &row.target,
                    &row.outcome,
                    &row.address,
                    &row.document_ids,
                    &row.chunk_ids,
                    &row.detail,
                    &row.prev_hash,
                    &row.hash,
                    "",
                    "",
                ],
            )?;
        }
    }
    Ok(())
}

fn write_checkpoint(out: &mut dyn Write, format: Format, cp: &Checkpoint) -> Result<()> {
    match format {
        Format::Jsonl => {
            write_json_line(out, "checkpoint", &cp)?;
        }
        Format::Csv => {
            let id = cp.upto_id.to_string();
            write_csv_line(
                out,
                &[
                    "checkpoint",
                    &id,
                    &cp.signed_at,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    &cp.head_hash,
                    &cp.public_key,
                    &cp.signature,
                ],
            )?;
        }
    }
    Ok(())
}

/// One JSON Lines record: `value`'s fields plus `"kind"`.
fn write_json_line(out: &mut dyn Write, kind: &str, value: &impl serde::Serialize) -> Result<()> {
    let mut v = serde_json::to_value(value).map_err(|e| AuditError::Format(e.to_string()))?;
    v["kind"] = kind.into();
    writeln!(out, "{v}")?;
    Ok(())
}

fn write_csv_line(out: &mut dyn Write, cells: &[&str]) -> Result<()> {
    out.write_all(csv_line(cells).as_bytes())?;
    Ok(())
}

/// One CSV record (RFC 4180, CRLF), each cell quoted when it must be and a
/// cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` …) prefixed
/// with `'`.
pub fn csv_line(cells: &[&str]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let guarded;
        let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
            guarded = format!("'{cell}");
            guarded.as_str()
        } else {
            cell
        };
        if cell.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(cell);
        }
    }
    line.push_str("\r\n");
    line
}

/// Verify an export file (format recognised from its first line).
pub fn verify_file(input: &mut dyn BufRead, rules: Rules) -> Result<Report> {
    let mut first = String::new();
    input.read_line(&mut first)?;
    let mut v = Verifier::new(rules);
    let mut ended = false;
    let mut feed = |v: &mut Verifier, item: Item| -> Result<()> {
        if ended {
            return Err(AuditError::Format("lines after the end line".into()));
        }
        match item {
            Item::Row(r) => v.row(&r),
            Item::Checkpoint(c) => v.checkpoint(&c),
            Item::End(e) => {
                v.end(&e);
                ended = true;
            }
        }
        Ok(())
    };
    if first.trim_end().starts_with("kind,id,") {
        let mut reader = CsvReader { input };
        while let Some(cells) = reader.next_record()? {
            feed(&mut v, csv_item(&cells)?)?;
            if v.failed() {
                break;
            }
        }
    } else {
        let mut line = first;
        loop {
            if !line.trim().is_empty() {
                feed(&mut v, json_item(&line)?)?;
                if v.failed() {
                    break;
                }
            }
            line.clear();
            if input.read_line(&mut line)? == 0 {
                break;
            }
        }
    }
    let ended_ok = ended || v.failed();
    let mut report = v.finish();
    if !ended_ok {
        let missing = report.head_id + 1;
        report.failure = Some(super::verify::Failure {
            row: missing,
            reason: format!(
                "the file ends after row {} without its signed end line (file truncated)",
                report.head_id
            ),
        });
    }
    Ok(report)
}

enum Item {
    Row(Row),
    Checkpoint(Checkpoint),
    End(ExportEnd),
}

fn json_item(line: &str) -> Result<Item> {
    let bad = |e: serde_json::Error| AuditError::Format(format!("{e} in line {line:.80}"));
    let v: serde_json::Value = serde_json::from_str(line).map_err(bad)?;
    match v.get("kind").and_then(|k| k.as_str()) {
        Some("row") => Ok(Item::Row(serde_json::from_value(v).map_err(bad)?)),
        Some("checkpoint") => Ok(Item::Checkpoint(serde_json::from_value(v).map_err(bad)?)),
        Some("end") => Ok(Item::End(serde_json::from_value(v).map_err(bad)?)),
        _ => Err(AuditError::Format(format!(
            "line without a known kind: {line:.80}"
        ))),
    }
}

fn csv_item(cells: &[String]) -> Result<Item> {
    if cells.len() != CSV_HEADER.len() {
        return Err(AuditError::Format(format!(
            "a CSV record has {} cells, expected {}",
            cells.len(),
            CSV_HEADER.len()
        )));
    }
    let c = |i: usize| cells[i].clone();
    let num = |i: usize| {
        cells[i]
            .parse::<i64>()
            .map_err(|_| AuditError::Format(format!("not a number: {:?}", cells[i])))
    };
    match cells[0].as_str() {
        "row" => Ok(Item::Row(Row {
            id: num(1)?,
            at: c(2),
            actor: c(3),
            action: c(4),
            target: c(5),
            outcome: c(6),
            address: c(7),
            document_ids: c(8),
            chunk_ids: c(9),
            detail: c(10),
            prev_hash: c(11),
            hash: c(12),
        })),
        "checkpoint" => Ok(Item::Checkpoint(Checkpoint {
            upto_id: num(1)?,
            signed_at: c(2),
            head_hash: c(12),
            public_key: c(13),
            signature: c(14),
        })),
        "end" => Ok(Item::End(ExportEnd {
            rows: num(10)? as u64,
            head_id: num(1)?,
            head_hash: c(12),
            exported_at: c(2),
            public_key: c(13),
            signature: c(14),
        })),
        other => Err(AuditError::Format(format!("unknown record kind {other:?}"))),
    }
}

/// RFC 4180 records (quoted cells may span lines), undoing the formula guard.
struct CsvReader<'a> {
    input: &'a mut dyn BufRead,
}

impl CsvReader<'_> {
    fn next_record(&mut self) -> Result<Option<Vec<String>>> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let mut chars = line.chars().peekable();
            while let Some(ch) = chars.next() {
                if quoted {
                    if ch == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            cell.push('"');
                        } else {
                            quoted = false;
                        }
                    } else {
                        cell.push(ch);
                    }
                } else if ch == '"' {
                    quoted = true;
                    was_quoted = true;
                } else if ch == ',' {
                    cells.push(unguard(std::mem::take(&mut cell)));
                    was_quoted = false;
                } else if ch == '\r' || ch == '\n' {
                    // end of record (outside quotes)
                } else {
                    cell.push(ch);
                }
            }
            if !quoted {
                break;
            }
            line.clear();
            if self.input.read_line(&mut line)? == 0 {
                return Err(AuditError::Format("unterminated quoted CSV cell".into()));
            }
        }
        let _ = was_quoted;
        cells.push(unguard(cell));
        Ok(Some(cells))
    }
}

fn unguard(cell: String) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) => rest.to_string(),
        None => cell,
    }
}
