//! The container's cgroup, over `libcgroups`.
