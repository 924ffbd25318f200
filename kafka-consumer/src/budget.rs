//! The consumer's one hard memory budget (`fetch.memory.budget.bytes`), sans-IO.
//!
//! Three things count against it:
//! * **reserved**: a fetch request in flight reserves its `max_bytes` (what the broker may
//!   send back) before it is sent, so responses can never arrive beyond the budget;
//! * **held**: the record bytes of fetch responses not yet handed to the application;
//! * **decompression room**: a fixed slice kept for the one batch being decompressed and
//!   handed out (the decoder refuses batches that decompress beyond it).
//!
//! A fetch is only sent when its reservation fits. A slow application therefore stops the
//! fetching, not the growth of memory. Records already handed out belong to the application
//! (they may keep their fetch response alive, as any `Bytes` slice does).

/// The accounting.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    limit: usize,
    room: usize,
    held: usize,
    reserved: usize,
    peak: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, `room` of them kept for decompression.
    pub fn new(limit: usize, room: usize) -> Self {
        assert!(room < limit, "decompression room must be below the budget");
        Self {
            limit,
            room,
            held: 0,
            reserved: 0,
            peak: 0,
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The room kept for decompressing one batch (also the decoder's cap).
    pub fn decompression_room(&self) -> usize {
        self.room
    }

    /// Bytes of fetched data held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes reserved by fetches in flight.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// The most `held + reserved` ever was.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// What a new fetch may still reserve.
    pub fn available(&self) -> usize {
        self.limit
            .saturating_sub(self.room)
            .saturating_sub(self.held)
            .saturating_sub(self.reserved)
    }

    /// Reserves `n` bytes for a fetch if they fit.
    pub fn try_reserve(&mut self, n: usize) -> bool {
        if n > self.available() {
            return false;
        }
        self.reserved += n;
        self.note_peak();
        true
    }

    /// A fetch completed: its reservation `reserved` is replaced by the `held` bytes of data
    /// it brought.
    pub fn settle(&mut self, reserved: usize, held: usize) {
        self.reserved = self.reserved.saturating_sub(reserved);
        self.held += held;
        self.note_peak();
    }

    /// `n` held bytes were handed out or dropped.
    pub fn release(&mut self, n: usize) {
        debug_assert!(n <= self.held, "released {n} of {} held", self.held);
        self.held = self.held.saturating_sub(n);
    }

    fn note_peak(&mut self) {
        self.peak = self.peak.max(self.held + self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_limit() {
        let mut b = MemoryBudget::new(100, 20);
        assert_eq!(b.available(), 80);
        assert!(b.try_reserve(50));
        assert!(!b.try_reserve(31));
        assert!(b.try_reserve(30));
        b.settle(50, 10);
        assert_eq!((b.held(), b.reserved(), b.available()), (10, 30, 40));
        b.release(10);
        b.settle(30, 0);
        assert_eq!(b.available(), 80);
        assert_eq!(b.peak(), 80);
    }
}
