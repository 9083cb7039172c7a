use tokio_postgres::error::SqlState;

/// Errors from the database layer. Messages carry what was being done; they never carry
/// connection strings or secrets.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{context}: {message}")]
    Query {
        context: &'static str,
        message: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{context}: a row with the same {constraint} already exists")]
    UniqueViolation {
        context: &'static str,
        constraint: String,
    },
    #[error("{context}: {constraint} would be violated")]
    CheckViolation {
        context: &'static str,
        constraint: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("migration {version} ({name}): {message}")]
    Migration {
        version: i32,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// Wraps a driver error with what we were doing, classifying constraint violations so callers
    /// can answer "conflict" rather than "internal error".
    pub(crate) fn query(context: &'static str, source: tokio_postgres::Error) -> Self {
        if let Some(db) = source.as_db_error() {
            let constraint = db.constraint().unwrap_or("constraint").to_string();
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                return DbError::UniqueViolation {
                    context,
                    constraint,
                };
            }
            if *db.code() == SqlState::CHECK_VIOLATION {
                return DbError::CheckViolation {
                    context,
                    constraint,
                };
            }
            let message = db.message().to_string();
            return DbError::Query {
                context,
                message,
                source,
            };
        }
        DbError::Query {
            context,
            message: source.to_string(),
            source,
        }
    }

    /// The database cannot be reached or went away (no connection, connection closed, server
    /// shutting down or starting up): retry later, it is not the request's fault (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Query { source, .. } => {
                source.is_closed()
                    || source.code().is_some_and(|c| {
                        // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
                        c.code().starts_with("08")
                            || matches!(c.code(), "57P01" | "57P02" | "57P03")
                    })
            }
            _ => false,
        }
    }

    /// The SQLSTATE of the underlying server error, if any (tests and error mapping use it).
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            DbError::Query { source, .. } => source.code(),
            _ => None,
        }
    }
}

/// `result.ctx("doing x")` — attaches context to driver errors.
pub(crate) trait Ctx<T> {
    fn ctx(self, context: &'static str) -> DbResult<T>;
}

impl<T> Ctx<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, context: &'static str) -> DbResult<T> {
        self.map_err(|e| DbError::query(context, e))
    }
}
