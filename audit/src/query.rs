//! Reading a log for people: `tessera-audit show`, `export` (JSON lines, CSV) and `report`
//! (text, JSON, one self-contained HTML page). These read records; they do not verify them
//! (`verify` does): the command line says so.

use crate::format::Record;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Which records to keep. Every filter given must match.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `time_us` ≥ this.
    pub since_us: Option<u64>,
    /// `time_us` < this.
    pub until_us: Option<u64>,
    /// `function` is one of these.
    pub functions: Vec<String>,
    /// `mechanism` (name) or `mechanism_id` (decimal or 0x hex) is one of these.
    pub mechanisms: Vec<String>,
    /// `token` (serial number).
    pub token: Option<String>,
    /// `key_unique_id` or `key_id_label_sha256` begins with this (hex).
    pub key: Option<String>,
    /// Operations and refusals not approved: `fips_approved` false and an `op` or a `verdict`
    /// of `non-approved` or `refused`.
    pub non_approved: bool,
    /// `rv` is not `CKR_OK`.
    pub failures: bool,
}

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        if self.since_us.is_some_and(|t| r.time_us < t) || self.until_us.is_some_and(|t| r.time_us >= t) {
            return false;
        }
        if !self.functions.is_empty() && !self.functions.iter().any(|f| f == &r.function) {
            return false;
        }
        if !self.mechanisms.is_empty() {
            let name = r.mechanism.as_deref();
            let hit = self.mechanisms.iter().any(|m| {
                Some(m.as_str()) == name
                    || parse_number(m).is_some_and(|n| Some(n) == r.mechanism_id)
                    || name.is_some_and(|n| n.eq_ignore_ascii_case(m) || n.eq_ignore_ascii_case(&format!("CKM_{m}")))
            });
            if !hit {
                return false;
            }
        }
        if self.token.as_ref().is_some_and(|t| r.token.as_deref() != Some(t.as_str())) {
            return false;
        }
        if let Some(k) = &self.key {
            let k = k.to_ascii_lowercase();
            let hit = [&r.key_unique_id, &r.key_id_label_sha256]
                .iter()
                .any(|v| v.as_deref().is_some_and(|v| v.starts_with(&k)));
            if !hit {
                return false;
            }
        }
        if self.non_approved && !not_approved(r) {
            return false;
        }
        if self.failures && r.rv_id == 0 {
            return false;
        }
        true
    }
}

fn not_approved(r: &Record) -> bool {
    !r.fips_approved && (r.op.is_some() || matches!(r.verdict.as_deref(), Some("non-approved" | "refused")))
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Calls `each` with every record line of the log's files (oldest first; without its `\n`) and
/// the record parsed from it; a line that is no record is counted and skipped. Returns the lines
/// skipped.
pub fn scan(log: &[PathBuf], mut each: impl FnMut(&[u8], &Record)) -> std::io::Result<u64> {
    let mut skipped = 0;
    crate::tree::scan_files(log, |line| match serde_json::from_slice::<Record>(line) {
        Ok(r) => each(line, &r),
        Err(_) => skipped += 1,
    })?;
    Ok(skipped)
}

/// The CSV columns of `export --format csv`: every member of a record but the checkpoint's
/// note (a checkpoint row says `checkpoint` in `function`).
pub const CSV_COLUMNS: [&str; 26] = [
    "seq",
    "time",
    "time_us",
    "pid",
    "uid",
    "function",
    "category",
    "slot",
    "token",
    "session",
    "user",
    "mechanism",
    "mechanism_id",
    "key_unique_id",
    "key_id_label_sha256",
    "op",
    "verdict",
    "rv",
    "rv_id",
    "fips_approved",
    "mode",
    "detail",
    "epoch",
    "key_index",
    "prev",
    "mac",
];

/// RFC 3339 UTC with microseconds.
pub fn time(us: u64) -> String {
    humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
}

/// One CSV row of a record (`line` is its line, for the MAC).
pub fn csv_row(line: &[u8], r: &Record) -> Vec<String> {
    let o = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let s = |v: &Option<std::borrow::Cow<str>>| v.as_deref().unwrap_or_default().to_string();
    let mac = crate::format::split(line).map(|(_, m)| crate::format::hex(&m)).unwrap_or_default();
    vec![
        r.seq.to_string(),
        time(r.time_us),
        r.time_us.to_string(),
        r.pid.to_string(),
        r.uid.to_string(),
        r.function.to_string(),
        r.category.to_string(),
        o(r.slot),
        s(&r.token),
        o(r.session),
        s(&r.user),
        s(&r.mechanism),
        o(r.mechanism_id),
        s(&r.key_unique_id),
        s(&r.key_id_label_sha256),
        s(&r.op),
        s(&r.verdict),
        r.rv.to_string(),
        r.rv_id.to_string(),
        r.fips_approved.to_string(),
        r.mode.to_string(),
        s(&r.detail),
        r.epoch.to_string(),
        r.key_index.to_string(),
        r.prev.to_string(),
        mac,
    ]
}

/// Output formats of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The record lines as they are in the log (MACs and all).
    JsonLines,
    Csv,
}

/// Writes the records of `log` that `filter` keeps to `out`; the number written and skipped.
pub fn export(
    log: &[PathBuf],
    filter: &Filter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> std::io::Result<(u64, u64)> {
    let mut n = 0;
    let mut err = None;
    let skipped = match format {
        ExportFormat::JsonLines => scan(log, |line, r| {
            if err.is_none() && filter.matches(r) {
                n += 1;
                if let Err(e) = out.write_all(line).and_then(|()| out.write_all(b"\n")) {
                    err = Some(e);
                }
            }
        })?,
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_COLUMNS)?;
            let skipped = scan(log, |line, r| {
                if err.is_none() && filter.matches(r) {
                    n += 1;
                    if let Err(e) = w.write_record(csv_row(line, r)) {
                        err = Some(e.into());
                    }
                }
            })?;
            w.flush()?;
            skipped
        }
    };
    match err {
        Some(e) => Err(e),
        None => Ok((n, skipped)),
    }
}

/// One line of `show`: time, seq, pid, function, mechanism, result, approval.
pub fn show_line(r: &Record) -> String {
    let approval = if r.fips_approved {
        "approved"
    } else if not_approved(r) {
        r.verdict.as_deref().unwrap_or("non-approved")
    } else {
        "-"
    };
    let mut s = format!(
        "{} #{} pid {} {} {} {} {}",
        time(r.time_us),
        r.seq,
        r.pid,
        r.function,
        r.mechanism.as_deref().unwrap_or("-"),
        r.rv,
        approval
    );
    if let Some(t) = &r.token {
        s.push_str(&format!(" token {t}"));
    }
    if let Some(k) = &r.key_unique_id {
        s.push_str(&format!(" key {}", k.get(..16).unwrap_or(k)));
    }
    if let Some(d) = &r.detail {
        s.push_str(&format!(" ({d})"));
    }
    s
}

/// Counts for one row of the report's table.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub approved: u64,
    pub non_approved: u64,
    pub failed: u64,
}

/// One time bucket of the chart.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub start_us: u64,
    pub approved: u64,
    pub non_approved: u64,
}

/// What an auditor asks first, over the records `filter` keeps.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub records: u64,
    /// Lines that are no records (not counted).
    pub skipped: u64,
    pub first_time_us: Option<u64>,
    pub last_time_us: Option<u64>,
    /// Operations (records with an `op`).
    pub operations: Counts,
    /// Per mechanism, then function (`-`: none).
    pub by_mechanism: BTreeMap<String, BTreeMap<String, Counts>>,
    /// Calls the policy refused, per function and mechanism (`function mechanism`).
    pub refusals: BTreeMap<String, u64>,
    /// Failed logins per `CK_RV` (`CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED` …).
    pub failed_logins: BTreeMap<String, u64>,
    pub logins: u64,
    /// Key and object lifecycle calls that succeeded, per function.
    pub key_lifecycle: BTreeMap<String, u64>,
    /// Module events: initialisations, finalisations, self-tests, forks, the error state.
    pub module_events: BTreeMap<String, u64>,
    pub checkpoints: u64,
    /// Approved and non-approved operations over time (at most 60 buckets).
    pub buckets: Vec<Bucket>,
    pub bucket_us: u64,
}

const LIFECYCLE: [&str; 11] = [
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_DeriveKey",
    "C_UnwrapKey",
    "C_WrapKey",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_SetAttributeValue",
    "C_EncapsulateKey",
    "C_DecapsulateKey",
];

/// Builds the report of `log` (two passes: the time range, then the counts; neither holds the
/// log).
pub fn report(log: &[PathBuf], filter: &Filter) -> std::io::Result<Report> {
    let (mut first, mut last) = (None::<u64>, None::<u64>);
    scan(log, |_, r| {
        if filter.matches(r) {
            first = Some(first.map_or(r.time_us, |f| f.min(r.time_us)));
            last = Some(last.map_or(r.time_us, |l| l.max(r.time_us)));
        }
    })?;
    let mut rep = Report {
        file: log.last().map(|p| p.display().to_string()).unwrap_or_default(),
        first_time_us: first,
        last_time_us: last,
        ..Default::default()
    };
    let (start, span) = match (first, last) {
        (Some(f), Some(l)) => (f, l - f + 1),
        _ => (0, 1),
    };
    const BUCKETS: u64 = 60;
    rep.bucket_us = span.div_ceil(BUCKETS).max(1);
    let nb = span.div_ceil(rep.bucket_us) as usize;
    rep.buckets =
        (0..nb).map(|i| Bucket { start_us: start + i as u64 * rep.bucket_us, ..Default::default() }).collect();
    rep.skipped = scan(log, |_, r| {
        if !filter.matches(r) {
            return;
        }
        rep.records += 1;
        let ok = r.rv_id == 0;
        if r.op.is_some() {
            let c = rep
                .by_mechanism
                .entry(r.mechanism.as_deref().unwrap_or("-").to_string())
                .or_default()
                .entry(r.function.to_string())
                .or_default();
            for c in [c, &mut rep.operations] {
                c.total += 1;
                c.approved += u64::from(r.fips_approved);
                c.non_approved += u64::from(!r.fips_approved && ok);
                c.failed += u64::from(!ok);
            }
            let b = &mut rep.buckets[((r.time_us - start) / rep.bucket_us) as usize];
            if r.fips_approved {
                b.approved += 1;
            } else if ok {
                b.non_approved += 1;
            }
        }
        if r.verdict.as_deref() == Some("refused") {
            *rep.refusals.entry(format!("{} {}", r.function, r.mechanism.as_deref().unwrap_or("-"))).or_default() += 1;
        }
        match r.function.as_ref() {
            "C_Login" | "C_LoginUser" => {
                rep.logins += 1;
                if !ok {
                    *rep.failed_logins.entry(r.rv.to_string()).or_default() += 1;
                }
            }
            "checkpoint" => rep.checkpoints += 1,
            "C_Initialize" | "C_Finalize" | "T_SelfTest" | "T_DeleteToken" => {
                *rep.module_events.entry(r.function.to_string()).or_default() += 1
            }
            f if LIFECYCLE.contains(&f) && ok => *rep.key_lifecycle.entry(f.to_string()).or_default() += 1,
            _ => {}
        }
        if r.category == "module"
            && r.detail.as_deref().is_some_and(|d| d.starts_with("error state") || d.starts_with("fork"))
        {
            let what = if r.detail.as_deref().is_some_and(|d| d.starts_with("fork")) {
                "fork detected"
            } else {
                "error state entered"
            };
            *rep.module_events.entry(what.to_string()).or_default() += 1;
        }
    })?;
    Ok(rep)
}

fn opt_time(us: Option<u64>) -> String {
    us.map(time).unwrap_or_else(|| "-".into())
}

/// The report as text.
pub fn report_text(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!("audit report: {}", r.file));
    line(format!("records: {}  time: {} .. {}", r.records, opt_time(r.first_time_us), opt_time(r.last_time_us)));
    let o = &r.operations;
    line(format!(
        "operations: {}  approved: {}  non-approved: {}  failed: {}",
        o.total, o.approved, o.non_approved, o.failed
    ));
    line(String::new());
    line(format!(
        "{:<28} {:<22} {:>8} {:>9} {:>13} {:>7}",
        "mechanism", "function", "total", "approved", "non-approved", "failed"
    ));
    for (m, fs) in &r.by_mechanism {
        for (f, c) in fs {
            line(format!("{m:<28} {f:<22} {:>8} {:>9} {:>13} {:>7}", c.total, c.approved, c.non_approved, c.failed));
        }
    }
    let section = |title: &str, map: &BTreeMap<String, u64>, out: &mut dyn FnMut(String)| {
        out(String::new());
        out(format!("{title}:{}", if map.is_empty() { " none" } else { "" }));
        for (k, v) in map {
            out(format!("  {k:<40} {v:>8}"));
        }
    };
    section("refusals (function mechanism)", &r.refusals, &mut line);
    line(String::new());
    line(format!("logins: {}  failed: {}", r.logins, r.failed_logins.values().sum::<u64>()));
    for (k, v) in &r.failed_logins {
        line(format!("  {k:<40} {v:>8}"));
    }
    section("key and object lifecycle (succeeded)", &r.key_lifecycle, &mut line);
    section("module events", &r.module_events, &mut line);
    line(String::new());
    line(format!("signed checkpoints: {}", r.checkpoints));
    if r.skipped > 0 {
        line(format!("lines that are no records (skipped): {}", r.skipped));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart: approved and non-approved operations per bucket, as inline SVG.
fn chart(r: &Report) -> String {
    let (w, h, pad) = (900.0f64, 260.0f64, 40.0f64);
    let max = r.buckets.iter().map(|b| b.approved.max(b.non_approved)).max().unwrap_or(0).max(1) as f64;
    let n = r.buckets.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"approved and non-approved operations over time\">"
    );
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#444\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"#444\"/>",
        h - pad,
        w - pad
    ));
    svg.push_str(&format!("<text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>", pad, max as u64));
    svg.push_str(&format!("<text x=\"4\" y=\"{}\" font-size=\"11\">0</text>", h - pad));
    for (i, b) in r.buckets.iter().enumerate() {
        let x = pad + i as f64 * bw;
        for (k, (v, color, label)) in
            [(b.approved, "#2e7d32", "approved"), (b.non_approved, "#c62828", "non-approved")].into_iter().enumerate()
        {
            let bh = (h - 2.0 * pad) * v as f64 / max;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{} {v} {label}</title></rect>",
                x + k as f64 * bw / 2.0,
                h - pad - bh,
                (bw / 2.0 - 0.5).max(0.5),
                bh,
                time(b.start_us)
            ));
        }
    }
    if let (Some(f), Some(l)) = (r.first_time_us, r.last_time_us) {
        svg.push_str(&format!("<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{}</text>", h - pad + 16.0, esc(&time(f))));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            w - pad,
            h - pad + 16.0,
            esc(&time(l))
        ));
    }
    svg.push_str(&format!(
        "<rect x=\"{0}\" y=\"8\" width=\"10\" height=\"10\" fill=\"#2e7d32\"/><text x=\"{1}\" y=\"17\" font-size=\"11\">approved</text><rect x=\"{2}\" y=\"8\" width=\"10\" height=\"10\" fill=\"#c62828\"/><text x=\"{3}\" y=\"17\" font-size=\"11\">non-approved</text>",
        pad,
        pad + 14.0,
        pad + 90.0,
        pad + 104.0
    ));
    svg.push_str("</svg>");
    svg
}

/// The report as one HTML page: no script, no style sheet or font from elsewhere, the chart
/// inline.
pub fn report_html(r: &Report) -> String {
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>Tessera audit report: {}</title>", esc(&r.file)));
    h.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,td:nth-child(2),th{text-align:left}</style></head><body>");
    h.push_str(&format!("<h1>Tessera audit report</h1><p>{}</p>", esc(&r.file)));
    let o = &r.operations;
    h.push_str(&format!(
        "<p>{} records, {} .. {}<br>operations: {} (approved {}, non-approved {}, failed {})<br>signed checkpoints: {}</p>",
        r.records,
        esc(&opt_time(r.first_time_us)),
        esc(&opt_time(r.last_time_us)),
        o.total,
        o.approved,
        o.non_approved,
        o.failed,
        r.checkpoints
    ));
    h.push_str("<h2>Operations over time</h2>");
    h.push_str(&chart(r));
    h.push_str("<h2>Operations per mechanism and function</h2><table><tr><th>mechanism</th><th>function</th><th>total</th><th>approved</th><th>non-approved</th><th>failed</th></tr>");
    for (m, fs) in &r.by_mechanism {
        for (f, c) in fs {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(m),
                esc(f),
                c.total,
                c.approved,
                c.non_approved,
                c.failed
            ));
        }
    }
    h.push_str("</table>");
    let table = |title: &str, map: &BTreeMap<String, u64>, h: &mut String| {
        h.push_str(&format!("<h2>{}</h2>", esc(title)));
        if map.is_empty() {
            h.push_str("<p>none</p>");
            return;
        }
        h.push_str("<table>");
        for (k, v) in map {
            h.push_str(&format!("<tr><td>{}</td><td>{v}</td></tr>", esc(k)));
        }
        h.push_str("</table>");
    };
    table("Refusals (function, mechanism)", &r.refusals, &mut h);
    h.push_str(&format!("<h2>Logins</h2><p>{} logins</p>", r.logins));
    table("Failed logins", &r.failed_logins, &mut h);
    table("Key and object lifecycle (succeeded)", &r.key_lifecycle, &mut h);
    table("Module events", &r.module_events, &mut h);
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn rec(f: &'static str, m: Option<&'static str>, approved: bool, rv: u64) -> Record<'static> {
        Record {
            function: Cow::Borrowed(f),
            mechanism: m.map(Cow::Borrowed),
            mechanism_id: m.map(|_| 0x1041),
            op: m.map(|_| Cow::Borrowed("sign")),
            fips_approved: approved,
            rv_id: rv,
            token: Some(Cow::Borrowed("abc")),
            key_unique_id: Some(Cow::Borrowed("00ff11")),
            ..Default::default()
        }
    }

    #[test]
    fn filters() {
        let r = rec("C_Sign", Some("CKM_ECDSA"), false, 0);
        assert!(Filter::default().matches(&r));
        let f = |g: Filter| g.matches(&r);
        assert!(f(Filter { functions: vec!["C_Sign".into()], ..Default::default() }));
        assert!(!f(Filter { functions: vec!["C_Verify".into()], ..Default::default() }));
        for m in ["CKM_ECDSA", "ecdsa", "0x1041", "4161"] {
            assert!(f(Filter { mechanisms: vec![m.into()], ..Default::default() }), "{m}");
        }
        assert!(!f(Filter { mechanisms: vec!["CKM_RSA_PKCS".into()], ..Default::default() }));
        assert!(f(Filter { key: Some("00FF".into()), token: Some("abc".into()), ..Default::default() }));
        assert!(!f(Filter { key: Some("11".into()), ..Default::default() }));
        assert!(f(Filter { non_approved: true, ..Default::default() }));
        assert!(!f(Filter { failures: true, ..Default::default() }));
        assert!(
            rec("C_Login", None, false, 0).op.is_none()
                && !Filter { non_approved: true, ..Default::default() }.matches(&rec("C_Login", None, false, 0))
        );
        assert!(Filter { failures: true, ..Default::default() }.matches(&rec("C_Login", None, false, 0xa0)));
        let t = Record { time_us: 100, ..r.clone() };
        assert!(Filter { since_us: Some(100), until_us: Some(101), ..Default::default() }.matches(&t));
        assert!(!Filter { since_us: Some(101), ..Default::default() }.matches(&t));
        assert!(!Filter { until_us: Some(100), ..Default::default() }.matches(&t));
    }
}
