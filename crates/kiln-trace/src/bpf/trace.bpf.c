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

#define AF_INET 2
#define AF_INET6 10

const volatile __u32 host_mntns = 0;
const volatile __u32 host_netns = 0;
const volatile __u8 rtt_by_remote = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Mount namespaces user space does not want (not a container, or not one
 * it was asked to trace). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
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

/* Events are too big for the BPF stack, and a per-CPU scratch buffer is
 * not safe either (a preempted program's half-built event would be
 * overwritten by the next one on that CPU): each event is built in place in
 * its thread's slot of the stash map, created from these zeroes. */
const struct exec_event zero_exec = {};
const struct open_event zero_open = {};

static __always_inline void count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &slot);
	if (n)
		*n += 1;
}

/* A namespace's unique id (kernels with ns_common.ns_id); else its inode. */
static __always_inline __u64 ns_id_of(struct ns_common *ns)
{
	if (bpf_core_field_exists(ns->ns_id))
		return BPF_CORE_READ(ns, ns_id);
	return BPF_CORE_READ(ns, inum);
}

/* The mount namespace of the current task; 0 when it is filtered out. */
static __always_inline __u32 wanted_mntns(struct task_struct *t, __u64 *id)
{
	struct mnt_namespace *mnt = BPF_CORE_READ(t, nsproxy, mnt_ns);
	__u32 ns = BPF_CORE_READ(mnt, ns.inum);
	*id = ns_id_of(&mnt->ns);
	if (ns == host_mntns || bpf_map_lookup_elem(&ignored, id))
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
	h->ns_id = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline int stash_exec(const char *filename, const char *const *argv)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 id = 0;
	__u32 ns = wanted_mntns(t, &id);
	if (!ns)
		return 0;
	/* Keyed by process, not thread: an exec from a non-leader thread
	 * returns in the leader's thread id. */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_update_elem(&execs, &tgid, &zero_exec, BPF_ANY)) {
		count_lost(LOST_EXEC);
		return 0;
	}
	struct exec_event *e = bpf_map_lookup_elem(&execs, &tgid);
	if (!e)
		return 0;
	fill_head(&e->h, KIND_EXEC, ns, t);
	e->h.ns_id = id;
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
	return 0;
}

static __always_inline int emit_exec(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct exec_event *e = bpf_map_lookup_elem(&execs, &tgid);
	if (!e)
		return 0;
	e->h.ret = ret;
	/* After a successful exec the name is the new program's. */
	bpf_get_current_comm(e->h.comm, sizeof(e->h.comm));
	e->h.tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost(LOST_EXEC);
	bpf_map_delete_elem(&execs, &tgid);
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
	__u64 id = 0;
	__u32 ns = wanted_mntns(t, &id);
	if (!ns)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&opens, &tid, &zero_open, BPF_ANY)) {
		count_lost(LOST_OPEN);
		return 0;
	}
	struct open_event *e = bpf_map_lookup_elem(&opens, &tid);
	if (!e)
		return 0;
	fill_head(&e->h, KIND_OPEN, ns, t);
	e->h.ns_id = id;
	e->flags = flags;
	e->mode = mode;
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), path) < 0)
		e->path[0] = 0;
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

/* ---- tcp ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} ignored_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rtt_key);
	__type(value, __u64);
} rtt_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct rtt_total_key);
	__type(value, struct rtt_total);
} rtt_totals SEC(".maps");

/* Never written: names struct tcp_event in a map so the skeleton generates
 * its Rust layout for the decoder. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_event);
} tcp_layout SEC(".maps");

/* The socket's network namespace; 0 when it is filtered out. */
static __always_inline __u32 wanted_netns(const struct sock *sk, __u64 *id)
{
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	__u32 ns = BPF_CORE_READ(net, ns.inum);
	*id = ns_id_of(&net->ns);
	if (ns == host_netns || bpf_map_lookup_elem(&ignored_net, id))
		return 0;
	return ns;
}

/* A TCP event for the socket in namespace (ns, id), reserved in the ring
 * with its head and zeroed addresses; NULL (counted as lost) when full. */
static __always_inline struct tcp_event *reserve_tcp(__u32 ns, __u64 id, __u8 type)
{
	struct tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(LOST_TCP);
		return 0;
	}
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	fill_head(&e->h, KIND_TCP, BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum), t);
	e->h.ns_id = id;
	e->netns = ns;
	e->type = type;
	e->oldstate = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	return e;
}

SEC("tracepoint/sock/inet_sock_set_state")
int on_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	__u64 id = 0;
	__u32 ns = wanted_netns((const struct sock *)ctx->skaddr, &id);
	if (!ns)
		return 0;
	__u8 type = EV_STATE;
	if (ctx->oldstate == TCP_CLOSE && ctx->newstate == TCP_SYN_SENT)
		type = EV_CONNECT;
	else if (ctx->newstate == TCP_CLOSE)
		type = EV_CLOSE;
	struct tcp_event *e = reserve_tcp(ns, id, type);
	if (!e)
		return 0;
	e->family = ctx->family;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	e->oldstate = ctx->oldstate;
	e->newstate = ctx->newstate;
	/* The context's arrays are copied with a helper: the verifier refuses
	 * loads through an offset context pointer. */
	if (ctx->family == AF_INET) {
		bpf_probe_read_kernel(e->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(e->daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(e->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e->daddr, 16, ctx->daddr_v6);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* accept: the new socket, found through the returned fd, in the task that
 * accepted it (so the pid is the server's). */
static __always_inline int emit_accept(long fd)
{
	if (fd < 0)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd & 0xfffff]) || !f)
		return 0;
	struct socket *sock = (struct socket *)BPF_CORE_READ(f, private_data);
	const struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u64 id = 0;
	__u32 ns = wanted_netns(sk, &id);
	if (!ns)
		return 0;
	struct tcp_event *e = reserve_tcp(ns, id, EV_ACCEPT);
	if (!e)
		return 0;
	e->h.ret = fd;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->newstate = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (e->family == AF_INET) {
		__u32 s4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s4, 4);
		__builtin_memcpy(e->daddr, &d4, 4);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return emit_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return emit_accept(ctx->ret);
}

/* ---- tcprtt ---- */

static __always_inline __u32 log2_slot(__u32 v)
{
	__u32 r = 0;
	for (int i = 16; i > 0; i >>= 1) {
		if (v >= (1u << i)) {
			v >>= i;
			r += i;
		}
	}
	return r < RTT_SLOTS ? r : RTT_SLOTS - 1;
}

SEC("tracepoint/tcp/tcp_probe")
int on_tcp_probe(struct trace_event_raw_tcp_probe *ctx)
{
	__u64 id = 0;
	__u32 ns = wanted_netns((const struct sock *)ctx->skaddr, &id);
	if (!ns)
		return 0;
	__u32 srtt = ctx->srtt;
	struct rtt_key k = {};
	k.netns = ns;
	k.slot = log2_slot(srtt);
	struct rtt_total_key tk = {};
	tk.netns = ns;
	if (rtt_by_remote) {
		/* sockaddr_in: address at 4; sockaddr_in6: at 8. */
		if (ctx->family == AF_INET)
			bpf_probe_read_kernel(k.daddr, 4, &ctx->daddr[4]);
		else
			bpf_probe_read_kernel(k.daddr, 16, &ctx->daddr[8]);
		__builtin_memcpy(tk.daddr, k.daddr, 16);
	}
	__u64 one = 1;
	__u64 *n = bpf_map_lookup_elem(&rtt_hist, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else if (bpf_map_update_elem(&rtt_hist, &k, &one, BPF_NOEXIST))
		count_lost(LOST_RTT);
	struct rtt_total *tot = bpf_map_lookup_elem(&rtt_totals, &tk);
	if (tot) {
		__sync_fetch_and_add(&tot->sum_us, srtt);
		__sync_fetch_and_add(&tot->count, 1);
	} else {
		struct rtt_total first = { .sum_us = srtt, .count = 1 };
		bpf_map_update_elem(&rtt_totals, &tk, &first, BPF_NOEXIST);
	}
	return 0;
}

/* ---- traceloop ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sys_event);
} sys_layout SEC(".maps");

/* Which argument of an x86-64 system call is a path (1-based; 0: none). */
static __always_inline __u32 path_arg(long nr)
{
	switch (nr) {
	case 2: case 4: case 6: case 21: case 59: case 80: case 82: case 83:
	case 84: case 85: case 86: case 87: case 88: case 89: case 90: case 92:
	case 133: case 161: case 165: case 166:
		return 1;
	case 257: case 258: case 259: case 260: case 262: case 263: case 265:
	case 266: case 267: case 268: case 269: case 280: case 322: case 332:
	case 437: case 439:
		return 2;
	default:
		return 0;
	}
}

/* A traceloop record of the current task, reserved in the ring with its
 * head and neutral fields; NULL when the task is not traced, or when the
 * ring is full (counted as lost). */
static __always_inline struct sys_event *reserve_sys(__u32 kind, struct task_struct *t)
{
	__u64 id = 0;
	__u32 ns = wanted_mntns(t, &id);
	if (!ns)
		return 0;
	struct sys_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(LOST_LOOP);
		return 0;
	}
	fill_head(&e->h, kind, ns, t);
	e->h.ns_id = id;
	e->nr = -1;
	e->ret = 0;
	e->exit_code = 0;
	e->path_arg = 0;
	e->path[0] = 0;
	return e;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int loop_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct sys_event *e = reserve_sys(KIND_SYS_ENTER, t);
	if (!e)
		return 0;
	e->nr = ctx->id;
	bpf_probe_read_kernel(e->args, sizeof(e->args), ctx->args);
	e->path_arg = path_arg(ctx->id);
	if (e->path_arg == 1)
		bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)ctx->args[0]);
	else if (e->path_arg == 2)
		bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)ctx->args[1]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int loop_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct sys_event *e = reserve_sys(KIND_SYS_EXIT, t);
	if (!e)
		return 0;
	e->nr = ctx->id;
	e->ret = ctx->ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* A process (thread group leader) exits, with its status. */
SEC("tracepoint/sched/sched_process_exit")
int loop_proc_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((__u32)pid_tgid != (__u32)(pid_tgid >> 32))
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct sys_event *e = reserve_sys(KIND_PROC_EXIT, t);
	if (!e)
		return 0;
	int code = BPF_CORE_READ(t, exit_code);
	unsigned int flags = BPF_CORE_READ(t, signal, flags);
	if (flags & 0x4 /* SIGNAL_GROUP_EXIT */)
		code = BPF_CORE_READ(t, signal, group_exit_code);
	e->exit_code = code;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
