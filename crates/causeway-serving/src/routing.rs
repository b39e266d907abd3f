//! Traffic routing between a champion and a challenger: a pure function of the request id, so
//! the same request always takes the same path and canary shares are exact in aggregate.

use causeway_types::RolloutMode;

/// Which version answers a request, and which (if any) shadows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The version whose score is returned.
    pub served: u32,
    /// The version scored for evaluation only.
    pub shadow: Option<u32>,
}

/// A stable number in `[0, 1)` for a request id.
pub fn request_fraction(request_id: &str) -> f64 {
    let digest = blake3::hash(request_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Routes a request. In shadow and canary modes both versions score every request, so labelled
/// outcomes compare them on the same traffic.
pub fn route(request_id: &str, champion: u32, challenger: Option<u32>, mode: RolloutMode) -> Route {
    match (challenger, mode) {
        (None, _) | (_, RolloutMode::ChampionOnly) => Route { served: champion, shadow: None },
        (Some(challenger), RolloutMode::Shadow) => Route { served: champion, shadow: Some(challenger) },
        (Some(challenger), RolloutMode::Canary { share }) => {
            if request_fraction(request_id) < share {
                Route { served: challenger, shadow: Some(champion) }
            } else {
                Route { served: champion, shadow: Some(challenger) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_share_is_respected_and_stable() {
        let requests: Vec<String> = (0..20_000).map(|index| format!("t{index}")).collect();
        let canary =
            requests.iter().filter(|id| route(id, 1, Some(2), RolloutMode::Canary { share: 0.05 }).served == 2).count();
        let share = canary as f64 / requests.len() as f64;
        assert!((share - 0.05).abs() < 0.006, "{share}");
        assert_eq!(
            route("t1", 1, Some(2), RolloutMode::Canary { share: 0.05 }),
            route("t1", 1, Some(2), RolloutMode::Canary { share: 0.05 })
        );
    }

    #[test]
    fn shadow_never_serves_the_challenger() {
        for index in 0..1_000 {
            let route = route(&format!("r{index}"), 1, Some(2), RolloutMode::Shadow);
            assert_eq!(route, Route { served: 1, shadow: Some(2) });
        }
        assert_eq!(route("x", 1, None, RolloutMode::Shadow), Route { served: 1, shadow: None });
    }
}
