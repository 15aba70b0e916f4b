//! Hedged requests through resil-isahc: attempts out side by side, the first good answer
//! returned, the rest dropped, which aborts their curl transfers (the cases in
//! `resil_tests::HedgeWorld`).

use futures_lite::future::block_on;
use resil_isahc::{Client, ResponseExt};
use resil_tests::{HedgeWorld, hedge_policy, open_sketch, shared_load};

#[test]
fn hedge_cases_through_the_isahc_client() {
    let _load = shared_load();
    let world = HedgeWorld::start();
    for case in world.cases() {
        let client = Client::builder()
            .policy(hedge_policy())
            .latency_sketch(open_sketch())
            .no_proxy()
            .build()
            .unwrap();
        let result = block_on(async {
            let response = client
                .request(case.method.clone(), &case.url)
                .send()
                .await?;
            response.text().await
        })
        .map_err(|e| format!("{e:#}"));
        world.check("isahc", &case, result);
        let stats = client.stats();
        assert_eq!(stats.hedges, case.hedges, "{}: {stats}", case.name);
    }
}
