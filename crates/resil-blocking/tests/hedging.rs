//! Hedged requests through the blocking client: each attempt on a thread of its own, the first
//! good answer returned, the rest dropped (the cases in `resil_tests::HedgeWorld`).

use resil_blocking::{Client, ResponseExt};
use resil_tests::{HedgeWorld, hedge_policy, open_sketch, shared_load};

#[test]
fn hedge_cases_through_the_blocking_client() {
    let _load = shared_load();
    let world = HedgeWorld::start();
    for case in world.cases() {
        // A client each, so each case's counts are its own.
        let client = Client::builder()
            .policy(hedge_policy())
            .latency_sketch(open_sketch())
            .no_proxy()
            .build()
            .unwrap();
        let result = client
            .request(case.method.clone(), &case.url)
            .send()
            .and_then(|r| r.text())
            .map_err(|e| format!("{e:#}"));
        world.check("blocking", &case, result);
        let stats = client.stats();
        assert_eq!(stats.hedges, case.hedges, "{}: {stats}", case.name);
    }
}
