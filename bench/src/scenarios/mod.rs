//! The scenarios, one module each.

pub mod churn;
pub mod conns;
pub mod fairness;
pub mod http;
pub mod steer;
pub mod udp;
