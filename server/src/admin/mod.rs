//! The admin view: the live feed of every session ([`feed`]) and the actions
//! an admin takes on a user ([`actions`]). Only admins may use either; a
//! refusal is `forbidden` and audited.

pub mod actions;
pub mod feed;

pub use feed::{AdminFeed, FeedFrame};

use crate::records::Records;

/// The admin view's state: the feed everyone watching shares, and where its
/// actions and refusals are audited.
#[derive(Debug)]
pub struct AdminService {
    /// The live feed.
    pub feed: AdminFeed,
    records: Records,
}

impl AdminService {
    /// The service, auditing through `records`.
    pub fn new(records: Records) -> AdminService {
        AdminService {
            feed: AdminFeed::new(),
            records,
        }
    }
}
