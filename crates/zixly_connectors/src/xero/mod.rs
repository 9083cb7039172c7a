//! Xero Accounting API: `/connections`, contacts, invoices (ACCREC sales, ACCPAY bills), credit notes,
//! payments and bank transactions, with `page` paging and `If-Modified-Since`; normalized into per-document
//! contributions to a client's day.
//!
//! Mapping (issue 5): `client_id` = ContactID. Revenue = sales invoices (ACCREC, AUTHORISED or
//! PAID) SubTotal. Expenses = bill lines (ACCPAY, AUTHORISED or PAID) tracked to the client through
//! the tracking category named in the settings (default `Client`; the option is the contact's name).
//! Cash flow = payments received (ACCREC, for the invoice's contact) minus payments made (ACCPAY,
//! for the clients the bill's lines are tracked to, pro rata by line amount).
//! Bank transactions (`/BankTransactions`, AUTHORISED): SPEND lines tracked to a client are that
//! client's expenses (ex-tax, like bill lines) and negative cash flow (the gross line: what left
//! the bank); RECEIVE lines are positive cash flow of the client they are tracked to, else of the
//! transaction's contact. RECEIVE-/SPEND-PREPAYMENT and -OVERPAYMENT move cash the same way
//! (cash when received or paid, never an expense); transfers count nothing. Their
//! document ids carry the [`BANK_TRANSACTION_PREFIX`] so they cannot collide with invoices or
//! payments in the contribution store.
//! Credit notes (`/CreditNotes`, ids `cn:<CreditNoteID>`): ACCRECCREDIT is negative revenue of its
//! contact, ACCPAYCREDIT negative expenses of its tracked lines' clients. Payments may settle a
//! credit note, prepayment or overpayment instead of an invoice (`Invoice` is optional): a refund
//! to a customer (ARCREDITPAYMENT, AR prepayment/overpayment payments) is negative cash flow of
//! the customer; supplier refunds are not attributed.
//! VOIDED/DELETED documents contribute nothing: their earlier contribution must be removed.
//! Foreign-currency amounts are converted with the document's own `CurrencyRate`
//! (base = amount / rate) into the organisation's base currency ([`XeroClient::organisation`]).
//! `Date` is a calendar date in the organisation's zone: never shifted.
//!
//! Files: [`model`] (the documents as served), [`client`] (connections, the paced client, the
//! keyset page reader), [`contributions`] (the mapping above).

pub mod client;
pub mod contributions;
pub mod model;

pub use client::*;
pub use contributions::*;
pub use model::*;
