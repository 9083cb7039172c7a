-- Password-reset links (issue 9): at most one outstanding link per user, and none left after the
-- password changes.
--
-- Before, issuing a link deleted the user's unused ones and then inserted the new one. Two
-- requests at once (two "forgot password" clicks, or a user and an ADMIN) both deleted nothing and
-- both inserted, leaving two valid links; and changing the password (`POST /me/password`, or a
-- reset) left every unused link valid, so a link mailed before the change still worked after it.
--
-- * `password_resets_outstanding_key`: one unused link per user, as a constraint. Issuing a link
--   is an upsert on it (`insert ... on conflict ... do update`): the new token replaces the old
--   one in the same row, so older links stop working at once and concurrent issues serialise on
--   the index instead of both succeeding. A used link keeps its row (`used_at` set) for the record.
-- * `password_resets_forget_on_password_change`: a change of `users.password_hash`, by whatever
--   path, deletes the user's unused links. Using a link marks it used first (same transaction),
--   then sets the password, which removes any other.

-- Keep the newest unused link of each user (ids are UUIDv7, ordered by creation).
delete from password_resets r
 where r.used_at is null
   and exists (select 1 from password_resets n
                where n.tenant_id = r.tenant_id and n.user_id = r.user_id
                  and n.used_at is null and n.id > r.id);

create unique index password_resets_outstanding_key on password_resets (tenant_id, user_id)
    where used_at is null;

-- Runs as the caller (zixly_app under RLS, or the owner): the rows it deletes are in the updated
-- user's tenant, which is the caller's.
create function zixly_password_resets_forget()
returns trigger
language plpgsql
set search_path = public, pg_temp
as $$
begin
    delete from password_resets
     where tenant_id = new.tenant_id and user_id = new.id and used_at is null;
    return null;
end
$$;
revoke all on function zixly_password_resets_forget() from public;

create trigger password_resets_forget_on_password_change
    after update of password_hash on users
    for each row
    when (old.password_hash is distinct from new.password_hash)
    execute function zixly_password_resets_forget();
