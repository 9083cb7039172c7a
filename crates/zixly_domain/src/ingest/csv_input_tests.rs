//! Unit tests of `csv_input.rs` (kept apart so that the module reads as one thing).

use super::*;
use crate::ingest::{CustomMetricRow, FinancialRow, LeadEventRow};
use crate::timezone::Tz;
use crate::CurrencyCode;

fn ctx() -> IngestContext {
    IngestContext {
        time_zone: "Australia/Sydney".parse::<Tz>().unwrap(),
        base_currency: CurrencyCode::AUD,
        default_source_system: "csv".into(),
    }
}

fn read<T: IngestRow>(input: &str) -> Result<Vec<RowResult<T>>, Vec<RowError>> {
    Ok(CsvRows::<_, T>::new(input.as_bytes(), ctx())?.collect())
}

fn errors_of<T: IngestRow>(items: &[RowResult<T>]) -> Vec<(u64, Option<&str>)> {
    items
        .iter()
        .filter_map(|r| r.as_ref().err())
        .flatten()
        .map(|e| (e.line, e.column.as_deref()))
        .collect()
}

const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow";

#[test]
fn reads_rows_with_bom_crlf_quotes_and_any_column_order() {
    let input = "\u{feff}revenue,Client_Name,client_id,record_date,cash_flow,expenses\r\n\
                 100,\"Acme, \"\"the\"\" best\",C1,2024-03-01,5,40\r\n\
                 \"200.5\",\"Multi\nline\",C2,2024-03-02,0,0\r\n";
    let rows = read::<FinancialRow>(input).unwrap();
    assert_eq!(rows.len(), 2);
    let a = rows[0].as_ref().unwrap();
    assert_eq!(a.line, 2);
    assert_eq!(a.row.client().client_name(), Some("Acme, \"the\" best"));
    assert_eq!(a.row.net_profit().decimal().to_string(), "60.00");
    let b = rows[1].as_ref().unwrap();
    assert_eq!(b.line, 3);
    assert_eq!(b.row.client().client_name(), Some("Multi\nline"));
}

#[test]
fn crlf_becomes_lf_across_read_boundaries() {
    /// Hands out one byte per read, to split every CRLF.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }
    for input in [&b"a\r\nb\rc\r\r\nd\r"[..], b"\r\n\r\n", b"plain\n"] {
        let expected: Vec<u8> = String::from_utf8(input.to_vec())
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        let mut out = Vec::new();
        CrlfToLf::new(Trickle(input)).read_to_end(&mut out).unwrap();
        assert_eq!(out, expected);
        let mut out = Vec::new();
        CrlfToLf::new(input).read_to_end(&mut out).unwrap();
        assert_eq!(out, expected);
    }
}

#[test]
fn crlf_line_numbers_are_exact() {
    let input = format!(
        "{HEADER}\r\nC1,A,2024-03-01,1,1,1\r\nC1,A,2024-03-01,1,1,1\r\nC2,B,2024-02-30,1,1,1\r\n"
    );
    let rows = read::<FinancialRow>(&input).unwrap();
    assert_eq!(errors_of(&rows), [(4, Some("record_date"))]);
}

#[test]
fn line_numbers_count_lines_inside_quoted_fields() {
    let input = format!("{HEADER}\nC1,\"two\nlines\",2024-03-01,1,1,1\nC2,B,2024-02-30,1,1,1\n");
    let rows = read::<FinancialRow>(&input).unwrap();
    // Row 1 spans lines 2-3, so the bad row starts on line 4.
    assert_eq!(errors_of(&rows), [(4, Some("record_date"))]);
}

#[test]
fn unknown_columns_are_header_errors_naming_them() {
    let err = read::<FinancialRow>(&format!("{HEADER},profit,Notes\n")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].line, 1);
    assert!(
        err[0]
            .reason
            .starts_with("unknown columns `profit`, `Notes` for financials"),
        "{}",
        err[0].reason
    );
}

#[test]
fn missing_required_and_duplicate_columns_are_header_errors() {
    let err = read::<FinancialRow>("client_id,client_id,record_date,revenue\n").unwrap_err();
    let got: Vec<_> = err
        .iter()
        .map(|e| (e.line, e.column.as_deref().unwrap_or(""), e.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "client_id", "the column appears more than once"),
            (
                1,
                "client_name",
                "required column is missing from the header"
            ),
            (1, "expenses", "required column is missing from the header"),
            (1, "cash_flow", "required column is missing from the header"),
        ]
    );
    let err = read::<FinancialRow>("").unwrap_err();
    assert!(err[0].reason.contains("empty"));
}

#[test]
fn wrong_field_counts_and_bad_utf8_are_row_errors() {
    let mut input = format!("{HEADER}\nC1,A,2024-03-01,1,1\nC2,B,2024-03-01,1,1,1\n").into_bytes();
    input.extend_from_slice(b"C3,\xff\xfe,2024-03-01,1,1,1\n");
    let rows: Vec<_> = CsvRows::<_, FinancialRow>::new(&input[..], ctx())
        .unwrap()
        .collect();
    assert_eq!(errors_of(&rows), [(2, None), (4, Some("client_name"))]);
    assert!(rows[0].as_ref().unwrap_err()[0]
        .reason
        .contains("expected 6 fields"));
    assert!(rows[1].is_ok());
}

#[test]
fn every_rule_reports_its_line() {
    let input = format!(
        "{HEADER},net_profit,currency\n\
         C1,A,2024-03-01,10,4,1,,\n\
         C1,A,2024-03-01,10,4,1,7,\n\
         C1,A,2024-03-01,10.001,4,1,,\n\
         C1,A,2024-03-01,\"1,000\",4,1,,\n\
         C1,A,03/01/2024,10,4,1,,\n\
         C1,A,2024-03-01,10,4,1,,XXX\n\
         ,A,2024-03-01,10,4,1,,\n\
         C1,A,2024-03-01,10,4,99999999999,,\n"
    );
    let rows = read::<FinancialRow>(&input).unwrap();
    assert_eq!(
        errors_of(&rows),
        [
            (3, Some("net_profit")),
            (4, Some("revenue")),
            (5, Some("revenue")),
            (6, Some("record_date")),
            (7, Some("currency")),
            (8, Some("client_id")),
            (9, Some("cash_flow")),
        ]
    );
}

#[test]
fn lead_events_and_custom_metrics_read_timestamps_in_the_tenant_zone() {
    let input = "client_id,event_date,lead_id,stage,status,value\n\
                 C1,2024-03-01 09:30,L1,won,WON,10\n\
                 C1,2024-03-01T09:30:00Z,L1,won,bogus,10\n";
    let rows = read::<LeadEventRow>(input).unwrap();
    assert_eq!(
        rows[0].as_ref().unwrap().row.event_date().to_rfc3339(),
        "2024-02-29T22:30:00+00:00"
    );
    assert_eq!(errors_of(&rows), [(3, Some("status"))]);

    let input = "metric_name,client_id,metric_value,record_date\nnps,C1,1.5,2024-03-01\nnps,C1,x,2024-03-01\n";
    let rows = read::<CustomMetricRow>(input).unwrap();
    assert!(rows[0].is_ok());
    assert_eq!(errors_of(&rows), [(3, Some("metric_value"))]);
}

#[test]
fn streams_without_reading_ahead() {
    // An input that fails after the first two records: the rows before it come out first.
    struct Failing {
        data: &'static [u8],
        pos: usize,
    }
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    let data =
        b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,A,2024-03-01,1,1,1\n";
    let mut rows = CsvRows::<_, FinancialRow>::new(Failing { data, pos: 0 }, ctx()).unwrap();
    assert!(rows.next().unwrap().is_ok());
    let err = rows.next().unwrap().unwrap_err();
    assert!(err[0].reason.contains("disk on fire"));
    assert!(rows.read_failure().is_some());
    assert!(rows.next().is_none());
}

/// The error that ended the input (the last item) and the number of items before it.
fn failure<T: IngestRow + std::fmt::Debug>(rows: CsvRows<&[u8], T>) -> (usize, RowError) {
    let items: Vec<_> = rows.collect();
    let last = items.last().expect("an item").as_ref().unwrap_err()[0].clone();
    (items.len() - 1, last)
}

#[test]
fn an_unclosed_quote_fails_at_the_record_size_limit_naming_both_lines() {
    // Line 3 opens a quote that never closes: the rest of the file would be one record.
    let mut input = format!("{HEADER}\nC1,A,2024-03-01,1,1,1\nC2,\"B,2024-03-01,1,1,1\n");
    for _ in 0..20 {
        input.push_str("C3,C,2024-03-01,1,1,1\n");
    }
    let rows = CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
    let (before, e) = failure(rows);
    assert_eq!(before, 1, "the valid line 2 comes first");
    assert_eq!(e.line, 3);
    assert_eq!(
        e.reason,
        "line 3: record longer than 64 bytes (unclosed quote at line 3?)"
    );

    // The record starts on line 3; the quote left open is the one on line 4.
    let input = format!(
        "{HEADER}\nC1,A,2024-03-01,1,1,1\nC2,\"two\nlines\",2024-03-01,1,\"1,1\n{}",
        "x\n".repeat(40)
    );
    let rows = CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
    assert_eq!(
        failure(rows).1.reason,
        "line 3: record longer than 64 bytes (unclosed quote at line 4?)"
    );
}

#[test]
fn a_long_line_without_quotes_fails_without_the_quote_hint() {
    let input = format!(
        "{HEADER}\nC1,A,2024-03-01,1,1,1\r\n{}\r\nC2,B,2024-03-01,1,1,1\r\n",
        "y".repeat(100)
    );
    let rows = CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
    let (before, e) = failure(rows);
    assert_eq!((before, e.line), (1, 3));
    assert_eq!(e.reason, "line 3: record longer than 64 bytes");

    // The header is a record too.
    let input = format!("{HEADER},{}\n", "z".repeat(100));
    let err = CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64)
        .err()
        .unwrap();
    assert_eq!(err[0].reason, "line 1: record longer than 64 bytes");
}

#[test]
fn records_up_to_the_limit_and_quotes_inside_unquoted_fields_are_fine() {
    // A quote inside an unquoted field is an ordinary character for the csv crate, and so
    // for the limit: every record here is short, whatever the quotes.
    let mut input = format!("{HEADER}\n");
    for i in 0..50 {
        input.push_str(&format!("C{i},5\" screen,2024-03-01,1,1,1\n"));
        input.push_str(&format!("C{i},\"say \"\"hi\"\"\",2024-03-02,1,1,1\n"));
    }
    let longest = input.lines().map(str::len).max().unwrap();
    let rows: Vec<_> =
        CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), longest + 1)
            .unwrap()
            .collect();
    assert_eq!(rows.len(), 100);
    assert!(
        rows.iter().all(Result::is_ok),
        "{:?}",
        rows.iter().find(|r| r.is_err())
    );
    assert_eq!(
        rows[1].as_ref().unwrap().row.client().client_name(),
        Some("say \"hi\"")
    );
}

#[test]
fn the_record_limit_fails_before_buffering_the_record() {
    // An endless quoted field: without the limit the reader would buffer until memory runs
    // out. The source panics if more than twice the limit is read.
    struct Endless {
        sent: usize,
        head: &'static [u8],
    }
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(self.sent < 2 * MAX_RECORD_BYTES, "read far past the limit");
            let n = if self.sent < self.head.len() {
                let n = buf.len().min(self.head.len() - self.sent);
                buf[..n].copy_from_slice(&self.head[self.sent..self.sent + n]);
                n
            } else {
                buf.fill(b'x');
                buf.len()
            };
            self.sent += n;
            Ok(n)
        }
    }
    let head = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,\"";
    let mut rows = CsvRows::<_, FinancialRow>::new(Endless { sent: 0, head }, ctx()).unwrap();
    let err = rows.next().unwrap().unwrap_err();
    assert_eq!(
        err[0].reason,
        format!("line 2: record longer than {MAX_RECORD_BYTES} bytes (unclosed quote at line 2?)")
    );
    assert_eq!(err[0].line, 2);
    assert!(rows.read_failure().is_some());
    assert!(rows.next().is_none());
}

#[test]
fn long_values_are_cut_in_error_messages() {
    let huge = "9".repeat(10_000);
    let input = format!("{HEADER},currency\nC1,A,{huge},x{huge},1,1,{huge}\n");
    let rows = read::<FinancialRow>(&input).unwrap();
    let errors = rows[0].as_ref().unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in errors {
        assert!(e.reason.len() < 300, "{}", e.reason);
        assert!(e.reason.contains("…` (10"), "{}", e.reason);
    }
    assert_eq!(
        errors[0].reason,
        format!(
            "`{}…` (10000 characters) is not an ISO date (YYYY-MM-DD)",
            "9".repeat(80)
        )
    );
    // Many unknown columns: ten named, the rest counted.
    let header: Vec<String> = (0..1000).map(|i| format!("extra{i}")).collect();
    let err = read::<FinancialRow>(&format!("{HEADER},{}\n", header.join(","))).unwrap_err();
    assert!(err[0].reason.len() < 1000, "{}", err[0].reason);
    assert!(
        err[0]
            .reason
            .contains("`extra9`, and 990 more for financials"),
        "{}",
        err[0].reason
    );
}

#[test]
fn rejects_file_has_original_columns_line_and_error() {
    let input =
        format!("\u{feff}{HEADER}\r\nC1,A,2024-03-01,1,1,1\r\nC2,\"B, b\",2024-02-30,1,1,1\r\n");
    let rejected = BTreeMap::from([(
        3,
        "column record_date: `2024-02-30` is not a real date".to_string(),
    )]);
    let mut out = Vec::new();
    assert_eq!(
        write_rejects(input.as_bytes(), &mut out, &rejected).unwrap(),
        1
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{HEADER},line,error\nC2,\"B, b\",2024-02-30,1,1,1,3,column record_date: `2024-02-30` is not a real date\n")
    );
}
