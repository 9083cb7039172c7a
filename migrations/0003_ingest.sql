-- Ingestion (issue 3): currency conversion through dated EUR reference rates.
--
-- zixly_fx_rate(from, to, on_date): the factor that turns an amount in `from` into `to` on
-- `on_date` (amount_to = amount_from * factor), or NULL when no rate is known. Never 1 by default.
--
-- Policy (also documented in crates/zixly_db/src/loader/mod.rs):
-- * A row of fx_rates says `1 base_currency = rate quote_currency` (ECB layout: base EUR). The
--   factor is, in this order: a direct rate from->to, the inverse of to->from, or the cross rate
--   through EUR, rate(EUR->to) / rate(EUR->from) (the same order as the reports in
--   crates/zixly_db/src/queries/reports.rs).
-- * Lookback: the most recent rate on or before `on_date`, at most 7 days earlier. The ECB does not
--   publish on weekends and TARGET holidays (up to 4 days in a row at Easter); a week covers those,
--   and a currency that stopped being published is an error rather than a stale conversion.
-- STABLE SQL functions; char(3) arguments keep fx_rates_pkey usable for the lookups.
create function zixly_fx_rate_on(base char(3), quote char(3), on_date date) returns numeric
language sql stable parallel safe as $$
    select case when base = quote then 1::numeric else
        (select r.rate from fx_rates r
          where r.base_currency = base and r.quote_currency = quote
            and r.rate_date between on_date - 7 and on_date
          order by r.rate_date desc limit 1) end
$$;

create function zixly_fx_rate(from_currency char(3), to_currency char(3), on_date date) returns numeric
language sql stable parallel safe as $$
    select coalesce(
        zixly_fx_rate_on(from_currency, to_currency, on_date),
        1 / zixly_fx_rate_on(to_currency, from_currency, on_date),
        zixly_fx_rate_on('EUR', to_currency, on_date) / zixly_fx_rate_on('EUR', from_currency, on_date))
$$;
grant execute on function zixly_fx_rate_on(char, char, date) to zixly_app, zixly_readonly;
grant execute on function zixly_fx_rate(char, char, date) to zixly_app, zixly_readonly;
