//! Xero documents → per-document contributions to a client's day (the mapping in the module
//! documentation of [`crate::xero`]).

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::model::*;

/// What one document adds to one client's day, in base currency. `removed`: the document is
/// VOIDED/DELETED (or no longer counts) and whatever it contributed before must be subtracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub document_id: String,
    pub client_id: String,
    pub date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
    pub removed: bool,
}

fn to_base(amount: Decimal, rate: Option<Decimal>) -> Decimal {
    match rate {
        Some(r) if !r.is_zero() && r != Decimal::ONE => (amount / r).round_dp(2),
        _ => amount,
    }
}

fn counts(status: &str) -> bool {
    matches!(status, "AUTHORISED" | "PAID")
}

/// The client a line is allocated to through `tracking_category` (its option is the client's
/// name).
fn tracked_client<'a>(
    line: &LineItem,
    contact_by_name: &'a HashMap<String, String>,
    tracking_category: &str,
) -> Option<&'a String> {
    line.tracking
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(tracking_category))
        .and_then(|t| contact_by_name.get(&t.option.trim().to_lowercase()))
}

/// A line's (ex-tax, gross) amounts under the document's `LineAmountTypes`
/// (`Exclusive` default, `Inclusive`, `NoTax`).
fn line_amounts(line: &LineItem, line_amount_types: Option<&str>) -> (Decimal, Decimal) {
    let amount = line.line_amount.unwrap_or_default();
    let tax = line.tax_amount.unwrap_or_default();
    match line_amount_types {
        Some("Inclusive") => (amount - tax, amount),
        Some("NoTax") => (amount, amount),
        _ => (amount, amount + tax),
    }
}

/// Normalizes bank transactions into contributions (see the module docs): per client, SPEND →
/// expenses (ex-tax) and negative cash flow (gross) of its tracked lines; RECEIVE → positive cash
/// flow (gross) of each line's tracked client, else of the contact. Non-AUTHORISED transactions
/// come back `removed`.
pub fn bank_transaction_contributions(
    transactions: &[BankTransaction],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    let mut out = Vec::new();
    for bt in transactions {
        let Some(date) = document_date(bt.date.as_deref(), bt.date_string.as_deref()) else {
            continue;
        };
        let live = bt.status == "AUTHORISED";
        // Prepayments and overpayments are cash when received or paid, like spend/receive
        // money, but not yet an expense: what they later settle is counted by that document.
        // Transfers move money between own accounts: nothing.
        let (spend, expense) = match bt.kind.as_str() {
            "SPEND" => (true, true),
            "SPEND-PREPAYMENT" | "SPEND-OVERPAYMENT" => (true, false),
            "RECEIVE" | "RECEIVE-PREPAYMENT" | "RECEIVE-OVERPAYMENT" => (false, false),
            _ => continue,
        };
        // client -> (ex-tax, gross), in the order first seen (stable output).
        let mut per_client: Vec<(String, Decimal, Decimal)> = Vec::new();
        for line in &bt.line_items {
            let client = match tracked_client(line, contact_by_name, tracking_category) {
                Some(c) => c.clone(),
                None if !spend => match &bt.contact {
                    Some(c) => c.contact_id.clone(),
                    None => continue,
                },
                None => continue,
            };
            let (net, gross) = line_amounts(line, bt.line_amount_types.as_deref());
            match per_client.iter_mut().find(|(c, _, _)| *c == client) {
                Some(e) => {
                    e.1 += net;
                    e.2 += gross;
                }
                None => per_client.push((client, net, gross)),
            }
        }
        for (client_id, net, gross) in per_client {
            let (expenses, cash_flow) = match (live, spend) {
                (false, _) => (Decimal::ZERO, Decimal::ZERO),
                (true, true) => (
                    if expense {
                        to_base(net, bt.currency_rate)
                    } else {
                        Decimal::ZERO
                    },
                    -to_base(gross, bt.currency_rate),
                ),
                (true, false) => (Decimal::ZERO, to_base(gross, bt.currency_rate)),
            };
            out.push(Contribution {
                document_id: bt.document_id(),
                client_id,
                date,
                revenue: Decimal::ZERO,
                expenses,
                cash_flow,
                removed: !live,
            });
        }
    }
    out
}

/// Normalizes documents into contributions. `contact_by_name` maps a lower-cased contact name to
/// its ContactID (for tracking options); `tracking_category` is the settings' category name.
/// Payments on bills are attributed through the bill's lines (see
/// [`contributions_with_bills`]); a bill must be among `invoices`.
pub fn contributions(
    invoices: &[Invoice],
    payments: &[Payment],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    contributions_with_bills(invoices, payments, &[], contact_by_name, tracking_category)
}

/// [`contributions`], with `payment_bills`: bills (ACCPAY) that are not among `invoices` but are
/// paid by `payments` (looked up only, contributing nothing themselves). A live payment on a bill
/// is negative cash flow of the clients the bill's lines are tracked to, pro rata by the lines'
/// gross amounts — not of the bill's contact, a supplier; the untracked lines' share and payments
/// on bills not found belong to no client.
pub fn contributions_with_bills(
    invoices: &[Invoice],
    payments: &[Payment],
    payment_bills: &[Invoice],
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<Contribution> {
    let mut out = Vec::new();
    for inv in invoices {
        let Some(date) = document_date(inv.date.as_deref(), inv.date_string.as_deref()) else {
            continue;
        };
        let live = counts(&inv.status);
        // A credit note is its invoice kind's opposite: ACCRECCREDIT reduces the customer's
        // revenue, ACCPAYCREDIT the tracked clients' expenses, on the credit note's date.
        let sign = if inv.is_credit_note() {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        match inv.kind.as_str() {
            "ACCREC" | "ACCRECCREDIT" => out.push(Contribution {
                document_id: inv.document_id(),
                client_id: inv.contact.contact_id.clone(),
                date,
                revenue: if live {
                    sign * to_base(inv.sub_total.unwrap_or_default(), inv.currency_rate)
                } else {
                    Decimal::ZERO
                },
                expenses: Decimal::ZERO,
                cash_flow: Decimal::ZERO,
                removed: !live,
            }),
            "ACCPAY" | "ACCPAYCREDIT" => {
                let inclusive = inv.line_amount_types.as_deref() == Some("Inclusive");
                let mut per_client: HashMap<String, Decimal> = HashMap::new();
                for line in &inv.line_items {
                    let Some(client) = tracked_client(line, contact_by_name, tracking_category)
                    else {
                        continue;
                    };
                    let mut amount = line.line_amount.unwrap_or_default();
                    if inclusive {
                        amount -= line.tax_amount.unwrap_or_default();
                    }
                    *per_client.entry(client.clone()).or_default() += amount;
                }
                for (client_id, amount) in per_client {
                    out.push(Contribution {
                        document_id: inv.document_id(),
                        client_id,
                        date,
                        revenue: Decimal::ZERO,
                        expenses: if live {
                            sign * to_base(amount, inv.currency_rate)
                        } else {
                            Decimal::ZERO
                        },
                        cash_flow: Decimal::ZERO,
                        removed: !live,
                    });
                }
            }
            _ => {}
        }
    }
    let mut bills: HashMap<&str, &Invoice> = HashMap::new();
    for inv in invoices.iter().chain(payment_bills) {
        if inv.kind == "ACCPAY" {
            bills.entry(inv.invoice_id.as_str()).or_insert(inv);
        }
    }
    for p in payments {
        let Some(date) = document_date(p.date.as_deref(), None) else {
            continue;
        };
        let live = p.status == "AUTHORISED";
        let payment = |client_id: String, cash_flow: Decimal, removed: bool| Contribution {
            document_id: p.payment_id.clone(),
            client_id,
            date,
            revenue: Decimal::ZERO,
            expenses: Decimal::ZERO,
            cash_flow,
            removed,
        };
        match (p.kind(), live) {
            (_, false) => {
                // Its document id is among the fetched ones: whatever it added is replaced
                // by nothing. The row only records the removal.
                if let Some(contact) = p.contact_id() {
                    out.push(payment(contact.to_string(), Decimal::ZERO, true));
                }
            }
            (PaymentKind::Receipt, true) => {
                if let Some(contact) = p.contact_id() {
                    out.push(payment(
                        contact.to_string(),
                        to_base(p.amount, p.currency_rate),
                        false,
                    ));
                }
            }
            // A refund of a credit note, prepayment or overpayment: cash paid back out to
            // the customer.
            (PaymentKind::CustomerRefund, true) => {
                if let Some(contact) = p.contact_id() {
                    out.push(payment(
                        contact.to_string(),
                        -to_base(p.amount, p.currency_rate),
                        false,
                    ));
                }
            }
            (PaymentKind::BillPayment, true) => {
                let Some(bill) = p.bill_id().and_then(|id| bills.get(id)) else {
                    continue;
                };
                let amount = to_base(p.amount, p.currency_rate);
                for (client_id, share) in
                    bill_client_shares(bill, contact_by_name, tracking_category)
                {
                    out.push(payment(client_id, -(amount * share).round_dp(2), false));
                }
            }
            (PaymentKind::Other, true) => {}
        }
    }
    out
}

/// The clients a bill's lines are tracked to, each with its share of the bill (its lines' gross
/// amounts over all lines' gross amounts), in the order first seen. Untracked lines' share
/// belongs to no client.
fn bill_client_shares(
    bill: &Invoice,
    contact_by_name: &HashMap<String, String>,
    tracking_category: &str,
) -> Vec<(String, Decimal)> {
    let mut total = Decimal::ZERO;
    let mut per_client: Vec<(String, Decimal)> = Vec::new();
    for line in &bill.line_items {
        let (_, gross) = line_amounts(line, bill.line_amount_types.as_deref());
        total += gross;
        if let Some(client) = tracked_client(line, contact_by_name, tracking_category) {
            match per_client.iter_mut().find(|(c, _)| c == client) {
                Some(e) => e.1 += gross,
                None => per_client.push((client.clone(), gross)),
            }
        }
    }
    if total.is_zero() {
        return Vec::new();
    }
    per_client
        .into_iter()
        .map(|(c, gross)| (c, gross / total))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn payments_without_invoice_parse_and_refunds_are_cash_out() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let page: Envelope = serde_json::from_value(serde_json::json!({"Payments": [
            {"PaymentID":"p1","Status":"AUTHORISED","PaymentType":"ACCRECPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":10,"Invoice":{"InvoiceID":"i1","Type":"ACCREC","Contact":{"ContactID":"c1"}}},
            {"PaymentID":"p2","Status":"AUTHORISED","PaymentType":"ARCREDITPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":4,"CreditNote":{"CreditNoteID":"cn1","Type":"ACCRECCREDIT","Contact":{"ContactID":"c1"}}},
            {"PaymentID":"p3","Status":"AUTHORISED","PaymentType":"AROVERPAYMENTPAYMENT","Date":"/Date(1539993600000+0000)/",
             "Amount":3,"Overpayment":{"OverpaymentID":"o1","Contact":{"ContactID":"c2"}}},
            {"PaymentID":"p4","Status":"AUTHORISED","Date":"/Date(1539993600000+0000)/","Amount":2}
        ]}))
        .expect("a page with payments that settle no invoice parses");
        let c = contributions(&[], &page.payments, &HashMap::new(), "Client");
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.document_id.as_str(), c.client_id.as_str(), c.cash_flow))
            .collect();
        assert_eq!(
            got,
            vec![
                ("p1", "c1", d("10")),
                ("p2", "c1", d("-4")),
                ("p3", "c2", d("-3"))
            ]
        );
    }

    #[test]
    fn credit_notes_are_negative_revenue_and_expenses() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let page: Envelope = serde_json::from_value(serde_json::json!({"CreditNotes": [
            {"CreditNoteID":"n1","Type":"ACCRECCREDIT","Status":"AUTHORISED","Contact":{"ContactID":"c1"},
             "Date":"/Date(1539993600000+0000)/","SubTotal":30.5,"CurrencyRate":0.5},
            {"CreditNoteID":"n2","Type":"ACCPAYCREDIT","Status":"PAID","Contact":{"ContactID":"s"},
             "Date":"/Date(1539993600000+0000)/","LineAmountTypes":"Inclusive","LineItems":[
                {"LineAmount":11,"TaxAmount":1,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]},
            {"CreditNoteID":"n3","Type":"ACCRECCREDIT","Status":"VOIDED","Contact":{"ContactID":"c1"},
             "Date":"/Date(1539993600000+0000)/","SubTotal":7}
        ]}))
        .unwrap();
        let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
        let c = contributions(&page.credit_notes, &[], &names, "Client");
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.document_id.as_str(), c.revenue, c.expenses, c.removed))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cn:n1", d("-61.00"), d("0"), false),
                ("cn:n2", d("0"), d("-10"), false),
                ("cn:n3", d("0"), d("0"), true),
            ]
        );
    }

    fn inv(json: serde_json::Value) -> Invoice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mapping_rules() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let sale = inv(
            serde_json::json!({"InvoiceID":"i1","Type":"ACCREC","Status":"PAID","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":100.0,"CurrencyCode":"USD","CurrencyRate":0.8}),
        );
        let voided = inv(
            serde_json::json!({"InvoiceID":"i2","Type":"ACCREC","Status":"VOIDED","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":50}),
        );
        let draft = inv(
            serde_json::json!({"InvoiceID":"i4","Type":"ACCREC","Status":"DRAFT","Contact":{"ContactID":"c1"},
            "Date":"/Date(1539993600000+0000)/","SubTotal":50}),
        );
        let bill = inv(
            serde_json::json!({"InvoiceID":"i3","Type":"ACCPAY","Status":"AUTHORISED","Contact":{"ContactID":"supplier"},
            "DateString":"2018-10-21T00:00:00","LineAmountTypes":"Inclusive","LineItems":[
                {"LineAmount":110,"TaxAmount":10,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":5,"Tracking":[{"Name":"Region","Option":"Acme Pty"}]}]}),
        );
        let pay: Payment = serde_json::from_value(serde_json::json!({"PaymentID":"p1","Status":"AUTHORISED","Date":"/Date(1539993600000+0000)/",
            "Amount":40,"Invoice":{"InvoiceID":"i3","Type":"ACCPAY","Contact":{"ContactID":"c1"}}})).unwrap();
        let unknown_bill: Payment = serde_json::from_value(serde_json::json!({"PaymentID":"p2","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/","Amount":9,"Invoice":{"InvoiceID":"gone","Type":"ACCPAY","Contact":{"ContactID":"c1"}}})).unwrap();
        let names = HashMap::from([("acme pty".to_string(), "c1".to_string())]);
        let c = contributions(
            &[sale, voided, draft, bill],
            &[pay, unknown_bill],
            &names,
            "Client",
        );
        assert_eq!(c[0].revenue, d("125.00"), "USD 100 at rate 0.8 is 125 base");
        assert!(!c[0].removed);
        assert!(c[1].removed && c[1].revenue.is_zero());
        assert!(c[2].removed, "drafts do not count");
        assert_eq!(
            (
                c[3].client_id.as_str(),
                c[3].expenses,
                c[3].date.to_string().as_str()
            ),
            ("c1", d("100"), "2018-10-21")
        );
        // The bill's payment goes to the tracked client (not the supplier), pro rata by the
        // lines' gross amounts: 40 x 110/115.
        assert_eq!(
            (c[4].client_id.as_str(), c[4].cash_flow),
            ("c1", d("-38.26"))
        );
        assert_eq!(
            c.len(),
            5,
            "a payment on a bill not at hand belongs to no client"
        );
    }

    #[test]
    fn bank_transactions_mapping() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let bt =
            |json: serde_json::Value| -> BankTransaction { serde_json::from_value(json).unwrap() };
        let names = HashMap::from([
            ("acme pty".to_string(), "c1".to_string()),
            ("beta ltd".to_string(), "c2".to_string()),
        ]);
        let spend = bt(
            serde_json::json!({"BankTransactionID":"b1","Type":"SPEND","Status":"AUTHORISED",
            "Contact":{"ContactID":"supplier"},"DateString":"2018-10-21T00:00:00","LineAmountTypes":"Exclusive",
            "LineItems":[
                {"LineAmount":100,"TaxAmount":10,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":20,"TaxAmount":0,"Tracking":[{"Name":"client","Option":" beta ltd "}]},
                {"LineAmount":7,"Tracking":[{"Name":"Region","Option":"Acme Pty"}]},
                {"LineAmount":3}]}),
        );
        let inclusive_fx = bt(
            serde_json::json!({"BankTransactionID":"b2","Type":"SPEND","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/","LineAmountTypes":"Inclusive","CurrencyRate":0.5,
            "LineItems":[{"LineAmount":11,"TaxAmount":1,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let receive = bt(
            serde_json::json!({"BankTransactionID":"b3","Type":"RECEIVE","Status":"AUTHORISED",
            "Contact":{"ContactID":"c2"},"Date":"/Date(1539993600000+0000)/","LineAmountTypes":"NoTax",
            "LineItems":[{"LineAmount":40},{"LineAmount":5,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let voided = bt(
            serde_json::json!({"BankTransactionID":"b4","Type":"SPEND","Status":"VOIDED",
            "Date":"/Date(1539993600000+0000)/",
            "LineItems":[{"LineAmount":9,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let transfer = bt(
            serde_json::json!({"BankTransactionID":"b5","Type":"SPEND-TRANSFER","Status":"AUTHORISED",
            "Date":"/Date(1539993600000+0000)/",
            "LineItems":[{"LineAmount":9,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]}]}),
        );
        let c = bank_transaction_contributions(
            &[spend, inclusive_fx, receive, voided, transfer],
            &names,
            "Client",
        );
        let got: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.document_id.as_str(),
                    c.client_id.as_str(),
                    c.date.to_string(),
                    c.expenses,
                    c.cash_flow,
                    c.removed,
                )
            })
            .collect();
        let day = |s: &str| s.to_string();
        assert_eq!(
            got,
            vec![
                // Ex-tax expenses, gross cash out; untracked and other-category lines count nothing.
                ("bt:b1", "c1", day("2018-10-21"), d("100"), d("-110"), false),
                ("bt:b1", "c2", day("2018-10-21"), d("20"), d("-20"), false),
                // Inclusive: 11 incl. 1 tax; rate 0.5 → base 20 expenses, 22 cash.
                (
                    "bt:b2",
                    "c1",
                    day("2018-10-20"),
                    d("20.00"),
                    d("-22.00"),
                    false
                ),
                // RECEIVE: untracked lines to the contact, tracked lines to their client.
                ("bt:b3", "c2", day("2018-10-20"), d("0"), d("40"), false),
                ("bt:b3", "c1", day("2018-10-20"), d("0"), d("5"), false),
                ("bt:b4", "c1", day("2018-10-20"), d("0"), d("0"), true),
            ]
        );
    }

    #[test]
    fn bill_payments_split_over_tracked_clients_with_the_payment_rate() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let bill = inv(
            serde_json::json!({"InvoiceID":"b1","Type":"ACCPAY","Status":"PAID","Contact":{"ContactID":"supplier"},
            "DateString":"2018-10-21T00:00:00","LineAmountTypes":"Exclusive","LineItems":[
                {"LineAmount":60,"TaxAmount":6,"Tracking":[{"Name":"Client","Option":"Acme Pty"}]},
                {"LineAmount":30,"TaxAmount":3,"Tracking":[{"Name":"Client","Option":"Beta Ltd"}]},
                {"LineAmount":10,"TaxAmount":1}]}),
        );
        let pay = |id: &str, status: &str| -> Payment {
            serde_json::from_value(serde_json::json!({"PaymentID":id,"Status":status,"Date":"/Date(1539993600000+0000)/",
                "Amount":55,"CurrencyRate":0.5,"Invoice":{"InvoiceID":"b1","Type":"ACCPAY","Contact":{"ContactID":"supplier"}}}))
            .unwrap()
        };
        let names = HashMap::from([
            ("acme pty".to_string(), "c1".to_string()),
            ("beta ltd".to_string(), "c2".to_string()),
        ]);
        // The bill is only looked up (not re-contributed): an incremental read may return the
        // payment without its bill.
        let c = contributions_with_bills(
            &[],
            &[pay("p1", "AUTHORISED"), pay("p2", "DELETED")],
            std::slice::from_ref(&bill),
            &names,
            "Client",
        );
        let got: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.document_id.as_str(),
                    c.client_id.as_str(),
                    c.cash_flow,
                    c.removed,
                )
            })
            .collect();
        // 55 at rate 0.5 = 110 base; gross lines 66/33/11 of 110: 60% and 30%, 10% untracked.
        assert_eq!(
            got,
            vec![
                ("p1", "c1", d("-66.00"), false),
                ("p1", "c2", d("-33.00"), false),
                ("p2", "supplier", d("0"), true),
            ]
        );
    }
}
