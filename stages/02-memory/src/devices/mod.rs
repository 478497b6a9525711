//! Device models: plain structs behind [`BusDevice`](crate::bus::BusDevice), with no KVM in sight.

pub mod console;
pub mod demo;
