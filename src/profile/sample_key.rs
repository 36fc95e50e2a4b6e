//! The identity of one aggregated sample: the live heap keeps blocks under it, the
//! aggregator sums values under it.

/// What identifies one aggregated sample: its stack (leaf first) and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub frames: Box<[u64]>,
    pub tid: i32,
    /// Address of the lock of a lock sample (`lock name` label); 0 for other samples.
    pub lock: u64,
    /// Address of the thrown type's mangled name of an exception sample (`exception type`
    /// label); 0 for other samples.
    pub exception: u64,
}
