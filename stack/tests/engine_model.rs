//! A model check of two engines (two cores of one process) fed random TCP
//! segment sequences from several clients on both queues: SYNs, ACKs, data,
//! FINs and RSTs with random sequence numbers, clients that move between
//! queues, time that jumps. Whatever arrives, nothing panics, the frame
//! ledgers balance, and no flow is owned by both cores. The model itself is
//! `stack::model`, which the `engine_segments` fuzz target drives too.

use nic::mem::MemConfig;
use proptest::prelude::*;
use stack::model::{run_two_cores, Seg};
use testkit::Capture;

fn seg() -> impl Strategy<Value = Seg> {
    (
        0usize..2,
        0u8..12,
        0u8..6,
        any::<u32>(),
        any::<u32>(),
        0usize..40,
        prop_oneof![Just(0u64), Just(1), Just(200), Just(70_000)],
    )
        .prop_map(|(core, client, kind, seq, ack, len, wait_ms)| Seg {
            core,
            client,
            kind,
            seq,
            ack,
            len,
            wait_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_segments_on_two_cores(segs in prop::collection::vec(seg(), 1..80)) {
        // Every core's two directions, written if a case fails.
        let mut pcap = Capture::new();
        let rings = [0, 1].map(|core| {
            pcap.pair(
                MemConfig::default(),
                &format!("core{core}-server"),
                &format!("core{core}-client"),
            )
        });
        let r = run_two_cores(&segs, rings);
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}
