use std::fmt;
use std::str::FromStr;

/// A user's role within a tenant (the seed's `UserRole`).
/// ADMIN manages users and integrations; EDITOR edits data and views everything; VIEWER reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(
    feature = "postgres",
    derive(postgres_types::ToSql, postgres_types::FromSql),
    postgres(name = "user_role")
)]
pub enum Role {
    #[cfg_attr(feature = "postgres", postgres(name = "VIEWER"))]
    Viewer,
    #[cfg_attr(feature = "postgres", postgres(name = "EDITOR"))]
    Editor,
    #[cfg_attr(feature = "postgres", postgres(name = "ADMIN"))]
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Editor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Editor => "EDITOR",
            Role::Viewer => "VIEWER",
        }
    }

    /// Whether this role includes everything `other` may do (ADMIN ⊇ EDITOR ⊇ VIEWER).
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected ADMIN, EDITOR or VIEWER")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ADMIN" => Ok(Role::Admin),
            "EDITOR" => Ok(Role::Editor),
            "VIEWER" => Ok(Role::Viewer),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_case_insensitively_and_order_by_power() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!(" EDITOR ".parse::<Role>().unwrap(), Role::Editor);
        assert!("owner".parse::<Role>().is_err());
        assert!(Role::Admin.includes(Role::Editor));
        assert!(Role::Editor.includes(Role::Viewer));
        assert!(!Role::Viewer.includes(Role::Editor));
    }
}
