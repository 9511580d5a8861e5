//! A store's limits: the guest's linear memories stay within a memory budget;
//! tables, instances and memories have fixed caps ([`super::engine`]).
//!
//! The budget is `linux.resources.memory.limit` less the engine's reserve
//! ([`super::engine::EngineSettings`]). A command's one store has it to
//! itself ([`InstanceLimits::alone`]). A service's concurrent instances share
//! one budget, not a limit each ([`super::service`]): each instance takes from
//! it what its linear memories grow to, and gives it all back when the request
//! ends and its store is dropped. A `memory.grow` (including the initial
//! allocation at instantiation) that would overdraw the budget fails: the
//! guest sees -1 from `memory.grow` (malloc returns NULL), or its
//! instantiation fails and the request is answered 503. So one request, or
//! many at once, can make requests fail but cannot get the container
//! OOM-killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::ResourceLimiter;

use super::engine::{MAX_INSTANCES, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES};

/// Bytes of linear memory the service's instances may hold together.
#[derive(Debug)]
pub struct Budget {
    ceiling: u64,
    used: AtomicU64,
}

impl Budget {
    pub fn new(ceiling: u64) -> Arc<Self> {
        Arc::new(Self { ceiling, used: AtomicU64::new(0) })
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.ceiling)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// What the instances hold now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// One instance's share of the [`Budget`], given back on drop.
#[derive(Debug)]
pub struct InstanceLimits {
    budget: Option<Arc<Budget>>,
    held: u64,
}

impl InstanceLimits {
    pub fn new(budget: Option<Arc<Budget>>) -> Self {
        Self { budget, held: 0 }
    }

    /// Limits for a store that has a budget of `ceiling` bytes to itself.
    pub fn alone(ceiling: Option<u64>) -> Self {
        Self::new(ceiling.map(Budget::new))
    }
}

impl Drop for InstanceLimits {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.held);
        }
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        let grow = desired.saturating_sub(current) as u64;
        if let Some(budget) = &self.budget {
            if !budget.take(grow) {
                return Ok(false);
            }
            self.held += grow;
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|maximum| desired <= maximum))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_the_budget_and_give_it_back() {
        let budget = Budget::new(100);
        let mut a = InstanceLimits::new(Some(budget.clone()));
        let mut b = InstanceLimits::new(Some(budget.clone()));
        assert!(a.memory_growing(0, 60, None).unwrap());
        assert!(!b.memory_growing(0, 60, None).unwrap(), "the budget is shared");
        assert!(b.memory_growing(0, 40, None).unwrap());
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.memory_growing(40, 100, None).unwrap());
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn without_a_budget_only_the_memory_maximum_counts() {
        let mut limits = InstanceLimits::new(None);
        assert!(limits.memory_growing(0, 1 << 40, None).unwrap());
        assert!(!limits.memory_growing(0, 10, Some(5)).unwrap());
    }
}
