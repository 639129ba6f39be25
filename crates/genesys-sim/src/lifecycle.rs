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
use crate::server::{SimHandle, State};

/// What the configuration fixes about attachment, computed once at start.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Orphan id → recording index (orphan ids are distinct from recording ids).
    pub(crate) orphan_by_id: HashMap<String, usize>,
    /// Recording index → orphan id.
    pub(crate) orphan_id: HashMap<usize, String>,
    /// Recording index → how long after its conversation's end the orphan is re-attached
    /// (`None`: never; an index given twice keeps the later re-attachment).
    orphan_until: HashMap<usize, Option<std::time::Duration>>,
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

/// End of recording `i`'s conversation (its own end if the conversation is unknown).
fn conversation_end(st: &State, i: usize) -> DateTime<Utc> {
    let r = &st.data.recordings[i];
    st.conversation(&r.conversation_id).map_or(r.end, |c| c.end)
}

/// Whether `end + d` is still to come at `now`.
fn before(end: DateTime<Utc>, d: std::time::Duration, now: DateTime<Utc>) -> bool {
    match chrono::Duration::from_std(d) {
        Ok(d) => now < end + d,
        // Too far to represent: never reached.
        Err(_) => true,
    }
}

/// Whether recording `i` is an orphan at `now`: configured as one, not attached by hand, and
/// its re-attachment time (if any) not reached.
pub(crate) fn is_orphan(st: &State, att: &Attachments, i: usize, now: DateTime<Utc>) -> bool {
    if att.forced.contains(&i) {
        return false;
    }
    match st.life.orphan_until.get(&i) {
        None => false,
        Some(None) => true,
        Some(Some(d)) => before(conversation_end(st, i), *d, now),
    }
}

/// The recordings absent from their conversation at `now`: late files before their time,
/// orphans, and detached ones.
pub(crate) fn absent(st: &State, att: &Attachments, now: DateTime<Utc>) -> HashSet<usize> {
    let n = st.data.recordings.len();
    let mut out: HashSet<usize> = att.detached.clone();
    for &(i, d) in &st.cfg.late_files {
        if i < n && !att.forced.contains(&i) && before(conversation_end(st, i), d, now) {
            out.insert(i);
        }
    }
    for &i in st.life.orphan_id.keys() {
        if is_orphan(st, att, i, now) {
            out.insert(i);
        }
    }
    out
}

impl SimHandle {
    /// Detaches these recordings (by recording id) from their conversations, whatever the
    /// clock says: until [`SimHandle::attach_recordings`] they are absent from
    /// `recordingmetadata`, the per-recording GET (404), batch requests submitted meanwhile,
    /// the compat listing and the retention query, as a late file is before its time. They
    /// are not listed as orphans. Unknown ids are ignored.
    pub fn detach_recordings<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let idx: Vec<usize> = self.indexes(ids);
        let mut inner = self.state.lock();
        for i in idx {
            inner.attach.forced.remove(&i);
            inner.attach.detached.insert(i);
        }
    }

    /// Attaches these recordings (by recording id) to their conversations now: undoes
    /// [`SimHandle::detach_recordings`], and also attaches a late file before its time or an
    /// orphan (which then leaves `GET /api/v2/orphanrecordings`), as an admin's re-attachment
    /// would. Unknown ids are ignored.
    pub fn attach_recordings<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let idx: Vec<usize> = self.indexes(ids);
        let mut inner = self.state.lock();
        for i in idx {
            inner.attach.detached.remove(&i);
            inner.attach.forced.insert(i);
        }
    }

    /// Whether recording `index` is attached to its conversation now (not a late file before
    /// its time, not an orphan, not detached).
    pub fn is_attached(&self, index: usize) -> bool {
        self.state.visibility().attached(index)
    }

    /// The orphan id of recording `index` if `SimConfig::orphans` names it (whether or not it
    /// has been re-attached since); distinct from its recording id.
    pub fn orphan_id(&self, index: usize) -> Option<&str> {
        self.state.life.orphan_id.get(&index).map(String::as_str)
    }

    fn indexes<I>(&self, ids: I) -> Vec<usize>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        ids.into_iter()
            .filter_map(|id| self.state.by_id.get(id.as_ref()).copied())
            .collect()
    }
}
