use uuid::Uuid;
use zixly_domain::Role;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

impl TenantTx {
    /// Adds a user to the current tenant. `email` is stored lower-cased.
    pub async fn insert_user(&self, email: &str, role: Role, password_hash: Option<&str>) -> DbResult<Uuid> {
        let id = Uuid::now_v7();
        self.client()
            .execute(
                "insert into users (tenant_id, id, email, role, password_hash)
                 values (zixly_current_tenant(), $1, $2, $3::text::user_role, $4)",
                &[&id, &email.trim().to_lowercase(), &role.as_str(), &password_hash],
            )
            .await
            .ctx("adding user")?;
        Ok(id)
    }
}
