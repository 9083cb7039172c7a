//! The CSV templates: every column, and an example row that the rules accept.

use super::*;

fn ctx() -> IngestContext {
    IngestContext {
        time_zone: "Australia/Sydney".parse().unwrap(),
        base_currency: CurrencyCode::AUD,
        default_source_system: "csv".into(),
    }
}

fn check<T: IngestRow>() {
    let template = csv_template::<T>();
    assert_eq!(
        T::EXAMPLE.len(),
        T::COLUMNS.len(),
        "{}: one example per column",
        T::DATASET
    );
    let lines: Vec<&str> = template.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "{}: header and one row: {template}",
        T::DATASET
    );
    let names: Vec<&str> = T::COLUMNS.iter().map(|c| c.name).collect();
    assert_eq!(lines[0], names.join(","));
    let rows = CsvRows::<_, T>::new(template.as_bytes(), ctx())
        .unwrap_or_else(|e| panic!("{}: header refused: {e:?}", T::DATASET));
    let rows: Vec<_> = rows.collect();
    assert_eq!(rows.len(), 1, "{}", T::DATASET);
    match &rows[0] {
        Ok(v) => assert_eq!(v.line, 2),
        Err(e) => panic!("{}: the example row is refused: {e:?}", T::DATASET),
    }
}

#[test]
fn each_template_has_every_column_and_a_valid_example_row() {
    check::<FinancialRow>();
    check::<LeadEventRow>();
    check::<CustomMetricRow>();
}
