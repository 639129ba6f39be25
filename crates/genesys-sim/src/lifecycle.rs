//! A recording's life after its conversation (`shared/genesys-api.md` section 9): files that
//! reach their conversation late (`SimConfig::late_files`), orphans that reach it late or never
//! (`SimConfig::orphans`), and the manual test controls [`SimHandle::detach_recordings`] /
//! [`SimHandle::attach_recordings`].
//!
//! A recording that is not attached to its conversation now is *absent*: every answer that
//! lists or serves a conversation's recordings leaves it out (see
//! [`crate::server::Visibility::attached`]). Once attached, a late file or orphan is an ordinary
//! recording in its own `fileState` (`AVAILABLE`), never announced as `UPLOADING` first: the
//! client gets no warning that it is coming.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::SimConfig;
use crate::dataset::{Dataset, Rng};

/// What the configuration fixes about attachment, computed once at start.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Orphan id → recording index (orphan ids are distinct from recording ids).
    pub(crate) orphan_by_id: HashMap<String, usize>,
    /// Recording index → orphan id.
    pub(crate) orphan_id: HashMap<usize, String>,
    /// Recording index → how long after its conversation's end the orphan is re-attached
    /// (`None`: never; an index given twice keeps the later re-attachment).
    pub(crate) orphan_until: HashMap<usize, Option<std::time::Duration>>,
    /// Recordings that reach their conversation late (late files and orphans).
    pub(crate) late_arrival: HashSet<usize>,
    /// Every recording index ordered by (creation time, recording id): the retention query's
    /// stable order.
    pub(crate) by_creation: Vec<usize>,
}

impl Lifecycle {
    pub(crate) fn new(cfg: &SimConfig, data: &Dataset) -> Self {
        let n = data.recordings.len();
        let mut rng = Rng::new(cfg.seed ^ 0x0000_0DD0_0F0A_4A11);
        let mut life = Self::default();
        for &(i, d) in &cfg.orphans {
            if i >= n {
                continue;
            }
            if !life.orphan_id.contains_key(&i) {
                let id = rng.uuid();
                life.orphan_by_id.insert(id.clone(), i);
                life.orphan_id.insert(i, id);
            }
            let until = life.orphan_until.entry(i).or_insert(d);
            *until = match (*until, d) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        life.late_arrival = cfg
            .late_files
            .iter()
            .map(|&(i, _)| i)
            .chain(cfg.orphans.iter().map(|&(i, _)| i))
            .filter(|&i| i < n)
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&data.recordings[a], &data.recordings[b]);
            creation_time(a.end)
                .cmp(&creation_time(b.end))
                .then_with(|| a.id.cmp(&b.id))
        });
        life.by_creation = order;
        life
    }
}

/// A recording's `creationTime` (retention query): the simulator takes the recording's end,
/// when its file is complete, not its start.
pub(crate) fn creation_time(end: DateTime<Utc>) -> DateTime<Utc> {
    end
}

/// The manual test controls, kept in the simulator's mutable state.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    /// Detached by [`SimHandle::detach_recordings`]: absent whatever the clock says.
    pub(crate) detached: HashSet<usize>,
    /// Attached by [`SimHandle::attach_recordings`]: present now, even a late file before its
    /// time or an orphan.
    pub(crate) forced: HashSet<usize>,
}
