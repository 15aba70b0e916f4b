//! The circuit breaker through resil-tokio: a breaker per origin leaves the other backends
//! alone.

#[tokio::test]
async fn a_breaker_per_origin_leaves_the_other_backends_alone() {
    resil_tests::check_breaker_scope_through(|b: resil_tokio::ClientBuilder| b).await;
}
