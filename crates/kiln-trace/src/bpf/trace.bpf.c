// SPDX-License-Identifier: GPL-2.0
/* kiln trace: exec and open gadgets on the kernel's stable syscall
 * tracepoints only (no kprobes): arguments are stashed per thread at
 * sys_enter and sent with the return value at sys_exit. Events from kiln's
 * own mount namespace, and from namespaces user space has ruled out, are
 * dropped here; a failed ring-buffer reservation is counted, never silent. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "trace.h"

const volatile __u32 host_mntns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Mount namespaces user space does not want (not a container, or not one
 * it was asked to trace). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ignored SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct exec_event);
} execs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct open_event);
} opens SEC(".maps");

/* Scratch space: events are too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_event);
} open_scratch SEC(".maps");

static __always_inline void count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &slot);
	if (n)
		*n += 1;
}

/* The mount namespace of the current task; 0 when it is filtered out. */
static __always_inline __u32 wanted_mntns(struct task_struct *t)
{
	__u32 ns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	if (ns == host_mntns || bpf_map_lookup_elem(&ignored, &ns))
		return 0;
	return ns;
}

static __always_inline void fill_head(struct head *h, __u32 kind, __u32 ns, struct task_struct *t)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->mntns = ns;
	h->parent_mntns = BPF_CORE_READ(t, real_parent, nsproxy, mnt_ns, ns.inum);
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ppid = BPF_CORE_READ(t, real_parent, tgid);
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->ret = 0;
	h->cgroup = bpf_get_current_cgroup_id();
	h->ts_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline int stash_exec(const char *filename, const char *const *argv)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 ns = wanted_mntns(t);
	if (!ns)
		return 0;
	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e)
		return 0;
	fill_head(&e->h, KIND_EXEC, ns, t);
	e->args_count = 0;
	e->args_size = 0;
	/* argv[0] may differ from the file run: record the file first. */
	long n = bpf_probe_read_user_str(e->args, ARG_SIZE, filename);
	if (n <= 0)
		n = 0;
	e->args_size = n;
	for (int i = 1; i < MAX_ARGS; i++) {
		const char *arg = 0;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		__u32 off = e->args_size;
		if (off > ARGS_SIZE - ARG_SIZE)
			break;
		n = bpf_probe_read_user_str(&e->args[off], ARG_SIZE, arg);
		if (n <= 0)
			break;
		e->args_count++;
		e->args_size += n;
	}
	__u32 tid = e->h.tid;
	if (bpf_map_update_elem(&execs, &tid, e, BPF_ANY))
		count_lost(LOST_EXEC);
	return 0;
}

static __always_inline int emit_exec(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_event *e = bpf_map_lookup_elem(&execs, &tid);
	if (!e)
		return 0;
	e->h.ret = ret;
	/* After a successful exec the name is the new program's. */
	bpf_get_current_comm(e->h.comm, sizeof(e->h.comm));
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost(LOST_EXEC);
	bpf_map_delete_elem(&execs, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return stash_exec((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return stash_exec((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	return emit_exec(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	return emit_exec(ctx->ret);
}

static __always_inline int stash_open(const char *path, int flags, __u32 mode)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 ns = wanted_mntns(t);
	if (!ns)
		return 0;
	__u32 zero = 0;
	struct open_event *e = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!e)
		return 0;
	fill_head(&e->h, KIND_OPEN, ns, t);
	e->flags = flags;
	e->mode = mode;
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), path) < 0)
		e->path[0] = 0;
	__u32 tid = e->h.tid;
	if (bpf_map_update_elem(&opens, &tid, e, BPF_ANY))
		count_lost(LOST_OPEN);
	return 0;
}

static __always_inline int emit_open(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_event *e = bpf_map_lookup_elem(&opens, &tid);
	if (!e)
		return 0;
	e->h.ret = ret;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost(LOST_OPEN);
	bpf_map_delete_elem(&opens, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return stash_open((const char *)ctx->args[0], (int)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return stash_open((const char *)ctx->args[1], (int)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return stash_open((const char *)ctx->args[1], (int)how.flags, (__u32)how.mode);
}

SEC("tracepoint/syscalls/sys_exit_open")
int exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
