//! The scenarios, one module each.

pub mod attach;
pub mod churn;
pub mod conns;
pub mod dnstcp;
pub mod fairness;
pub mod http;
pub mod lossy;
pub mod neighflood;
pub mod overload;
pub mod steer;
pub mod synflood;
pub mod udp;
pub mod wan;
pub mod wan_extra;
