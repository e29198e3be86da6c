//! Header maps reused per thread. A map sized for a proxied message (its entries plus room for the
//! headers a proxy adds) is over a kilobyte, past the allocator's per-thread cache, so a fresh one per
//! message costs the allocator's slow path twice (allocation and free). Emptied maps keep their
//! capacity and come back here instead.

use std::cell::RefCell;

use http::HeaderMap;

/// Spare maps kept per thread (one per message in flight is what a busy connection needs).
const KEEP: usize = 32;
/// Maps grown past this many entries (an unusual message) are dropped, not kept.
const MAX_CAPACITY: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `capacity` entries: a spare one when this thread has one.
pub fn header_map(capacity: usize) -> HeaderMap {
    match SPARE.with_borrow_mut(Vec::pop) {
        Some(mut map) => {
            map.reserve(capacity);
            map
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Gives a map that is no longer needed back for [`header_map`] to hand out again.
pub fn recycle_header_map(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < KEEP {
            spare.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_map_comes_back_empty_with_its_room() {
        let mut map = header_map(20);
        let room = map.capacity();
        assert!(room >= 20);
        map.insert("x-a", "1".parse().unwrap());
        map.append("x-a", "2".parse().unwrap());
        recycle_header_map(map);
        let again = header_map(4);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room, "not the recycled map");
        // Too large to keep: the next map is a fresh one.
        let mut big = HeaderMap::with_capacity(200);
        big.insert("x-b", "1".parse().unwrap());
        recycle_header_map(big);
        recycle_header_map(again);
        assert_eq!(header_map(1).capacity(), room);
    }
}
