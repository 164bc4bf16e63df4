//! What an admin does to a user from the admin view: stop their run
//! (`killed_by_admin`, the student is told in words), disconnect them (close
//! code 4011), disable or re-enable their account (connections closed, run
//! stopped, tokens refused at once). Each attempt, with its outcome, and each
//! refusal of a non-admin is audited.

use std::time::Duration;

use campus_protocol::{close_codes, AdminMsg, AdminRequest, ErrorCode, ServerMsg, UserInfo};

use crate::authz::{authorize, Action, Resource};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::NewAudit;

/// How long a stop waits for the session to confirm.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The reason a disconnected student's page shows.
const DISCONNECTED: &str = "disconnected by an administrator";

/// Refuse a non-admin (`forbidden`), auditing the attempt.
pub fn admit(state: &AppState, user: &UserInfo, req: &AdminRequest) -> Result<(), AppError> {
    authorize(user, Action::Write, Resource::Users).map_err(|denied| {
        state.admin.records.audit(NewAudit {
            actor_id: Some(user.id),
            actor: Some(user.username.clone()),
            action: "admin.forbidden".into(),
            target: target_of(req).map(|id| id.to_string()),
            detail: Some(type_of(req).into()),
            ip: None,
        });
        AppError::from(denied)
    })
}

/// Carry out an action (`admin_watch`/`admin_unwatch` are the connection's
/// own). Every attempt is audited with its outcome, a failed one too: a stop
/// that timed out may still have stopped the run.
pub async fn handle(
    state: &AppState,
    user: &UserInfo,
    req: AdminRequest,
) -> Result<ServerMsg, AppError> {
    admit(state, user, &req)?;
    let id = req.id();
    let action = type_of(&req);
    if let AdminRequest::AdminAccounts { .. } = req {
        let accounts = state.auth.list_accounts().await?;
        return Ok(ServerMsg::Admin(AdminMsg::AdminAccounts { id, accounts }));
    }
    let (audited, target_id) = match &req {
        AdminRequest::AdminStopRun { user_id, .. } => ("admin.stop_run", *user_id),
        AdminRequest::AdminDisconnect { user_id, .. } => ("admin.disconnect", *user_id),
        AdminRequest::AdminSetDisabled {
            user_id,
            disabled: true,
            ..
        } => ("user.disabled", *user_id),
        AdminRequest::AdminSetDisabled { user_id, .. } => ("user.enabled", *user_id),
        AdminRequest::AdminWatch { .. }
        | AdminRequest::AdminUnwatch { .. }
        | AdminRequest::AdminAccounts { .. } => {
            return Err(AppError::new(
                ErrorCode::BadRequest,
                "the feed is started and stopped by the connection",
            ));
        }
    };
    let done = act(state, user, req).await;
    let (target, detail) = match &done {
        Ok((name, changed, _)) => (
            name.clone(),
            (!changed).then(|| "nothing to do".to_string()),
        ),
        Err(e) => (
            target_id.to_string(),
            Some(format!("failed: {}", e.message)),
        ),
    };
    state.admin.records.audit(NewAudit {
        actor_id: Some(user.id),
        actor: Some(user.username.clone()),
        action: audited.into(),
        target: Some(target),
        detail,
        ip: None,
    });
    let (_, changed, message) = done?;
    Ok(ServerMsg::Admin(AdminMsg::AdminDone {
        id,
        action: action.into(),
        user_id: Some(target_id),
        changed,
        message,
    }))
}

/// The action itself: (target's username, whether anything changed, words for the admin).
async fn act(
    state: &AppState,
    user: &UserInfo,
    req: AdminRequest,
) -> Result<(String, bool, String), AppError> {
    match req {
        AdminRequest::AdminWatch { .. }
        | AdminRequest::AdminUnwatch { .. }
        | AdminRequest::AdminAccounts { .. } => {
            Err(AppError::new(ErrorCode::BadRequest, "not an action"))
        }
        AdminRequest::AdminStopRun {
            user_id, run_id, ..
        } => {
            let name = username(state, user_id).await?;
            let stop = state.runner.kill_by_admin(user_id, run_id.as_deref());
            let stopped = tokio::time::timeout(STOP_WAIT, stop).await.map_err(|_| {
                AppError::new(
                    ErrorCode::Busy,
                    "the run did not confirm its stop in time; look again in a moment",
                )
            })??;
            let message = match (stopped, run_id.is_some()) {
                (true, _) => format!("Stopped {name}'s run."),
                (false, true) => format!("{name}'s run had already ended; nothing was stopped."),
                (false, false) => format!("{name} has nothing running."),
            };
            Ok((name, stopped, message))
        }
        AdminRequest::AdminDisconnect { user_id, .. } => {
            let name = username(state, user_id).await?;
            let ended = state
                .hub
                .revoke_user(user_id, (close_codes::KICKED, DISCONNECTED));
            let message = match ended {
                0 => format!("{name} is not connected."),
                1 => format!("Closed {name}'s connection."),
                n => format!("Closed {name}'s {n} connections."),
            };
            Ok((name, ended > 0, message))
        }
        AdminRequest::AdminSetDisabled {
            user_id, disabled, ..
        } => {
            if user_id == user.id && disabled {
                return Err(AppError::new(
                    ErrorCode::BadRequest,
                    "you cannot disable your own account",
                ));
            }
            let (name, changed) = state.auth.set_disabled(user_id, disabled).await?;
            let message = match (changed, disabled) {
                (true, true) => format!("Disabled {name}: signed out everywhere, run stopped."),
                (true, false) => format!("Enabled {name} again."),
                (false, true) => format!("{name} was already disabled."),
                (false, false) => format!("{name} was already enabled."),
            };
            Ok((name, changed, message))
        }
    }
}

async fn username(state: &AppState, user_id: i64) -> Result<String, AppError> {
    state
        .auth
        .username_of(user_id)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such user"))
}

fn type_of(req: &AdminRequest) -> &'static str {
    match req {
        AdminRequest::AdminWatch { .. } => "admin_watch",
        AdminRequest::AdminUnwatch { .. } => "admin_unwatch",
        AdminRequest::AdminStopRun { .. } => "admin_stop_run",
        AdminRequest::AdminDisconnect { .. } => "admin_disconnect",
        AdminRequest::AdminAccounts { .. } => "admin_accounts",
        AdminRequest::AdminSetDisabled { .. } => "admin_set_disabled",
    }
}

fn target_of(req: &AdminRequest) -> Option<i64> {
    match req {
        AdminRequest::AdminStopRun { user_id, .. }
        | AdminRequest::AdminDisconnect { user_id, .. }
        | AdminRequest::AdminSetDisabled { user_id, .. } => Some(*user_id),
        _ => None,
    }
}
