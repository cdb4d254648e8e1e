/* Events shared by the BPF programs and kiln-trace's decoder (src/event.rs
 * mirrors these layouts; keep both in step). */
#ifndef KILN_TRACE_H
#define KILN_TRACE_H

#define TASK_COMM_LEN 16
#define ARG_SIZE 128
#define MAX_ARGS 20
#define ARGS_SIZE (ARG_SIZE * MAX_ARGS)
#define PATH_SIZE 256

enum kind { KIND_EXEC = 1, KIND_OPEN = 2 };
enum lost_slot { LOST_EXEC = 0, LOST_OPEN = 1, LOST_SLOTS = 2 };

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

#endif
