/* Events shared by the BPF programs and kiln-trace's decoder (src/event.rs
 * mirrors these layouts; keep both in step). */
#ifndef KILN_TRACE_H
#define KILN_TRACE_H

#define TASK_COMM_LEN 16
#define ARG_SIZE 128
#define MAX_ARGS 20
#define ARGS_SIZE (ARG_SIZE * MAX_ARGS)
#define PATH_SIZE 256

enum kind { KIND_EXEC = 1, KIND_OPEN = 2, KIND_TCP = 3, KIND_SYS_ENTER = 4, KIND_SYS_EXIT = 5, KIND_PROC_EXIT = 6 };
enum lost_slot { LOST_EXEC = 0, LOST_OPEN = 1, LOST_TCP = 2, LOST_RTT = 3, LOST_LOOP = 4, LOST_SLOTS = 5 };
#define SYS_PATH_SIZE 64
enum tcp_type { EV_CONNECT = 1, EV_ACCEPT = 2, EV_CLOSE = 3, EV_STATE = 4 };
#define RTT_SLOTS 32

/* Common head of every event. */
struct head {
	__u32 kind;
	__u32 mntns;
	__u32 parent_mntns;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__s32 ret;
	__u64 cgroup;
	__u64 ts_ns;
	/* The attributing namespace's id (mount namespace; network namespace
	 * for TCP): unlike the inode, never reused, so a mark "not traced" on
	 * it cannot hide a later container. */
	__u64 ns_id;
	char comm[TASK_COMM_LEN];
};

struct exec_event {
	struct head h;
	__u32 args_count;
	__u32 args_size;
	char args[ARGS_SIZE];
};

struct open_event {
	struct head h;
	__s32 flags;
	__u32 mode;
	char path[PATH_SIZE];
};

/* A TCP event, attributed by the socket's network namespace (state
 * changes often run in softirq context, where the current task is not
 * the socket's owner). Addresses in network order; ports in host order. */
struct tcp_event {
	struct head h;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 type;
	__u8 oldstate;
	__u8 newstate;
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
};

/* tcprtt histogram key: a network namespace, optionally a remote address,
 * and a log2 slot of the smoothed RTT in microseconds. */
struct rtt_key {
	__u32 netns;
	__u32 slot;
	__u8 daddr[16];
};

struct rtt_total {
	__u64 sum_us;
	__u64 count;
};

struct rtt_total_key {
	__u32 netns;
	__u32 pad;
	__u8 daddr[16];
};

/* traceloop: one system call entered (with a path argument read for the
 * calls that take one) or returned, or a process that exited. */
struct sys_event {
	struct head h;
	__s64 nr;
	__u64 args[6];
	__s64 ret;
	__s32 exit_code;
	__u32 path_arg;
	char path[SYS_PATH_SIZE];
};

#endif
