//! The CSV reader fuzzed (proptest, a bounded number of cases, seconds in all): arbitrary bytes
//! and structured hostile CSV — quotes, separators and line ends in odd places, NULs, BOMs,
//! invalid UTF-8, ragged rows, shuffled and unknown headers — through `CsvRows` for each dataset.
//!
//! Properties: it never panics; it ends; every error names a line that exists in the input
//! (header = 1) and a column the dataset or the header knows, with a reason that holds no NUL
//! (reasons are stored as text); and memory stays bounded by the record being read, not by the
//! size of the input (a counting allocator measures this thread's heap while a generated stream of
//! hostile rows goes through).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use zixly_domain::ingest::{
    CsvRows, CustomMetricRow, FinancialRow, IngestContext, IngestRow, LeadEventRow, RowError,
};
use zixly_domain::timezone::Tz;
use zixly_domain::CurrencyCode;

// ---------------------------------------------------------------------------------------------
// Heap accounting of the current thread (other tests' threads do not disturb it).

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // `try_with`: no accounting while a thread's locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

#[allow(unsafe_code)] // a global allocator is unsafe by definition; this one only counts
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak growth of this thread's heap while `f` runs, in bytes.
fn peak_heap_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

// ---------------------------------------------------------------------------------------------

fn ctx() -> IngestContext {
    IngestContext {
        time_zone: "Europe/Berlin".parse::<Tz>().unwrap(),
        base_currency: CurrencyCode::EUR,
        default_source_system: "csv".into(),
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // No regression files in the tree: the seed printed on failure replays a case.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// Reads `input` as dataset `T` to the end; checks every error; returns (rows, errors) counts.
fn read_all<T: IngestRow>(input: &[u8]) -> (usize, usize) {
    let lines = 1 + input.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64;
    let check = |e: &RowError, header: &[String]| {
        assert!(
            e.line >= 1 && e.line <= lines,
            "line {} outside 1..={lines}: {e:?}",
            e.line
        );
        assert!(
            !e.reason.trim().is_empty(),
            "an error without a reason: {e:?}"
        );
        assert!(!e.reason.contains('\0'), "a NUL in a reason: {e:?}");
        if let Some(c) = &e.column {
            assert!(!c.contains('\0'), "a NUL in a column name: {e:?}");
            assert!(
                T::COLUMNS.iter().any(|k| k.name == c.as_str()) || header.iter().any(|h| h == c),
                "column {c:?} is neither the dataset's nor the header's: {e:?}"
            );
        }
    };
    match CsvRows::<_, T>::new(input, ctx()) {
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused header without an error");
            for e in &errors {
                assert_eq!(e.line, 1, "header errors are on line 1: {e:?}");
                check(e, &[]);
            }
            (0, errors.len())
        }
        Ok(reader) => {
            let header = reader.header().to_vec();
            let (mut rows, mut errors) = (0, 0);
            let mut last_line = 1;
            for item in reader {
                match item {
                    Ok(row) => {
                        assert!(row.line > last_line || row.line == 0, "line order");
                        last_line = row.line;
                        rows += 1;
                    }
                    Err(errs) => {
                        assert!(!errs.is_empty(), "a rejected row without an error");
                        for e in &errs {
                            check(e, &header);
                        }
                        errors += errs.len();
                    }
                }
            }
            (rows, errors)
        }
    }
}

fn read_every_dataset(input: &[u8]) {
    read_all::<FinancialRow>(input);
    read_all::<LeadEventRow>(input);
    read_all::<CustomMetricRow>(input);
}

/// Cells that break parsers: separators, quotes and line ends inside values, NULs, a BOM,
/// invalid UTF-8, long runs, and plausible values of every type.
fn cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"\"a,b\"".to_vec()),
        Just(b"\"line\nbreak\"".to_vec()),
        Just(b"\"unterminated".to_vec()),
        Just(b"x\"y".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"a\0b".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"\xC3".to_vec()),
        Just("é€😀".as_bytes().to_vec()),
        Just(b"  padded  ".to_vec()),
        Just(b"1234567890.12".to_vec()),
        Just(b"-0.00".to_vec()),
        Just(b"1e5".to_vec()),
        Just(b"99999999999999999999999999".to_vec()),
        Just(b"2024-02-29".to_vec()),
        Just(b"2024-02-30".to_vec()),
        Just(b"2024-03-31T02:30:00".to_vec()),
        Just(b"2024-10-27 02:30".to_vec()),
        Just(b"2024-01-01T00:00:00+25:00".to_vec()),
        Just(b"AUD".to_vec()),
        Just(b"won".to_vec()),
        Just(b"C-1".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
        (1usize..600).prop_map(|n| vec![b'x'; n]),
    ]
}

/// A header from the dataset's columns (shuffled, some dropped, some doubled, unknown ones
/// added), then rows of hostile cells, with LF, CRLF or CR line ends and ragged widths.
fn hostile_csv(columns: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    let width = columns.len();
    let header = proptest::sample::subsequence(columns, 0..=width)
        .prop_flat_map(|cols| {
            (
                Just(cols).prop_shuffle(),
                proptest::collection::vec(
                    prop_oneof![
                        Just("notes"),
                        Just("CLIENT_ID"),
                        Just(" revenue "),
                        Just(""),
                        Just("no\0te")
                    ],
                    0..2,
                ),
                any::<bool>(),
            )
        })
        .prop_map(|(mut cols, extra, bom)| {
            cols.extend(extra);
            let mut h = if bom {
                b"\xEF\xBB\xBF".to_vec()
            } else {
                Vec::new()
            };
            h.extend(cols.join(",").into_bytes());
            (h, cols.len())
        });
    (
        header,
        proptest::collection::vec(proptest::collection::vec(cell(), 0..14), 0..12),
        prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])],
        any::<bool>(),
    )
        .prop_map(|((mut out, _width), rows, eol, final_eol)| {
            for row in rows {
                out.extend_from_slice(eol);
                out.extend(row.join(&b","[..]));
            }
            if final_eol {
                out.extend_from_slice(eol);
            }
            out
        })
}

/// The dataset's column names, for the structured headers.
fn names<T: IngestRow>() -> Vec<&'static str> {
    T::COLUMNS.iter().map(|c| c.name).collect()
}

proptest! {
    #![proptest_config(config(600))]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_name_a_line(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_every_dataset(&input);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut input = b"client_id,client_name,record_date,revenue,expenses,cash_flow\n".to_vec();
        input.extend(body);
        read_all::<FinancialRow>(&input);
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn hostile_financials(input in hostile_csv(names::<FinancialRow>())) {
        read_all::<FinancialRow>(&input);
    }

    #[test]
    fn hostile_lead_events(input in hostile_csv(names::<LeadEventRow>())) {
        read_all::<LeadEventRow>(&input);
    }

    #[test]
    fn hostile_custom_metrics(input in hostile_csv(names::<CustomMetricRow>())) {
        read_all::<CustomMetricRow>(&input);
    }
}

/// The structured cases reach the value parsers: a plain row of each dataset is read as valid
/// by the same checking reader.
#[test]
fn plain_rows_of_every_dataset_are_valid() {
    type ReadAll = fn(&[u8]) -> (usize, usize);
    let cases: [(&[u8], ReadAll); 3] = [
        (
            b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC-1,A,2024-02-29,1234567890.12,1,1\n",
            read_all::<FinancialRow>,
        ),
        (
            b"client_id,event_date,lead_id,stage,status\r\nC-1,2024-02-29T10:00:00Z,L,Lead,won\r\n",
            read_all::<LeadEventRow>,
        ),
        (
            b"\xEF\xBB\xBFclient_id,metric_name,metric_value,record_date\nC-1,NPS,-0.5,2024-02-29\n",
            read_all::<CustomMetricRow>,
        ),
    ];
    for (input, read) in cases {
        assert_eq!(read(input), (1, 0), "{}", String::from_utf8_lossy(input));
    }
}

/// A generated stream of `rows` hostile records (each short), read without holding the input.
struct HostileStream {
    rows: usize,
    row: usize,
    pending: Vec<u8>,
    pos: usize,
}

impl HostileStream {
    fn new(rows: usize) -> Self {
        HostileStream {
            rows,
            row: 0,
            pending: b"client_id,client_name,record_date,revenue,expenses,cash_flow\r\n".to_vec(),
            pos: 0,
        }
    }
}

impl Read for HostileStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.pending.len() {
            if self.row == self.rows {
                return Ok(0);
            }
            let n = self.row;
            self.row += 1;
            self.pending.clear();
            self.pos = 0;
            // Valid rows, rows with bad values (their errors quote the value), quoted fields
            // with separators and line breaks, NULs, invalid UTF-8 and ragged rows.
            let row: &[u8] = match n % 6 {
                0 => b"C-1,\"Acme, \"\"the\"\" best\",2024-02-29,10.00,4.00,6\r\n",
                1 => b"C-2,B,2024-02-30,1.001,x,\"1\n2\"\r\n",
                2 => b"C-3,\0,2024-01-01,1\0,1,1\r\n",
                3 => b"C-4,\xff\xfe,2024-01-01,1,1,1\r\n",
                4 => b"C-5,short\r\n",
                _ => b"C-6,\"x\"\"\",2024-01-01,1,1,1,extra,fields\r\n",
            };
            self.pending.extend_from_slice(row);
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Memory is one record at a time: reading 60 000 hostile rows (about 2.4 MB) costs no more
/// heap than reading 600 (the errors are dropped as they come, as a streaming consumer would).
#[test]
fn memory_is_bounded_by_the_record_not_the_input() {
    let run = |rows: usize| {
        peak_heap_of(|| {
            let reader = CsvRows::<_, FinancialRow>::new(HostileStream::new(rows), ctx()).unwrap();
            let (mut ok, mut bad) = (0usize, 0usize);
            for item in reader {
                match item {
                    Ok(_) => ok += 1,
                    Err(_) => bad += 1,
                }
            }
            (ok, bad)
        })
    };
    let ((ok_small, bad_small), small) = run(600);
    let ((ok_big, bad_big), big) = run(60_000);
    assert_eq!((ok_small, bad_small), (100, 500));
    assert_eq!((ok_big, bad_big), (10_000, 50_000));
    // The reader's buffers (64 KiB line-end buffer, the csv crate's 8 KiB) and one record.
    assert!(small < 512 * 1024, "600 rows took {small} bytes of heap");
    assert!(
        big <= small + 64 * 1024,
        "60 000 rows took {big} bytes of heap at peak, 600 rows {small}: memory grows with the input"
    );
}
