// SPDX-License-Identifier: GPL-2.0
// vfio-gate audit: report config-space accesses to guarded PCI functions.
//
// pci_user_{read,write}_config_{byte,word,dword} are the kernel functions
// every user-initiated config access goes through: the sysfs "config" file
// (pci-sysfs.c), /proc/bus/pci (proc.c) and VFIO (vfio_pci_config.c). The
// probe reads its function's return address and looks it up in the caller
// ranges (set by the Go side from /proc/kallsyms) to say which path the
// access came by: no probe on the callers, no per-thread state.
//
// Each probe exists twice: as fentry (BPF trampolines: a direct call,
// no trap; used where the kernel's BTF and trampolines allow) and as
// kprobe (the fallback). The Go side loads one set only.
//
// Per access, the first thing every probe does is the guard_count check: with
// no function guarded it returns after one inlined array lookup.
//
// Struct layouts come from the running kernel's BTF (CO-RE): only the fields
// used are declared, with preserve_access_index.

#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct kernfs_node { __u64 id; } __attribute__((preserve_access_index));
struct kobject { struct kernfs_node *sd; } __attribute__((preserve_access_index));
struct device { struct kobject kobj; } __attribute__((preserve_access_index));
struct pci_dev { struct device dev; } __attribute__((preserve_access_index));
struct rb_node { unsigned long __rb_parent_color; } __attribute__((preserve_access_index));
struct cgroup { struct kernfs_node *kn; } __attribute__((preserve_access_index));
struct css_set { struct cgroup *dfl_cgrp; } __attribute__((preserve_access_index));
struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct css_set *cgroups;
} __attribute__((preserve_access_index));

#define barrier() asm volatile("" ::: "memory")
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))

#define NAME_LEN 16
#define WAKEUP_RECORDS 1024 // a forced wakeup every this many records (80 KiB)

enum access_op { OP_READ = 1, OP_WRITE = 2 };
enum access_path { PATH_UNKNOWN = 0, PATH_SYSFS = 1, PATH_PROCFS = 2, PATH_VFIO = 3 };

// Fixed little-endian layout, 72 bytes; decoded by audit/event.go.
struct event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 tid;
	__u32 offset;
	__u32 value;
	__u8 size;
	__u8 op;
	__u8 path;
	__u8 has_value;
	__u32 reserved;
	char comm[16];
	char dev[NAME_LEN];
};

// A guarded function: its device's sysfs directory (kernfs node id, the
// directory's inode number) and its name (0000:3b:00.0, NUL-padded), which
// the event carries: the probe compares the id and copies the name, it
// never reads the kernel's name string.
struct guard_entry {
	__u64 id;
	__u64 name[2];
};

// Every guarded function, keyed by its id (value: the entry, id included).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct guard_entry);
} guarded SEC(".maps");

// Where each path's callers of the access functions lie: [start, end) of
// pci_read_config, proc_bus_pci_read, the vfio-pci-core module, ...;
// unused ranges are zero. Kept by the Go side.
#define CALLER_RANGES 8
struct caller_range {
	__u64 start;
	__u64 end;
	__u32 path;
	__u32 pad;
};

struct callers {
	struct caller_range r[CALLER_RANGES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct callers);
} caller_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); // 4 MiB: ~52,000 records, ~190 ms at 280 k events/s on one CPU
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// Kept by the Go side: count is the number of entries in guarded; the first
// GUARD_SLOTS of them are also in slot (a free slot has id 0, which no
// kernfs node has), overflow counts the others. An array lookup is inlined
// by the verifier: a few instructions, no helper call, and comparing the id
// with the slots costs less than the hash lookup. The map is mmapped by
// the Go side, which writes it with atomic 8-byte stores in order: a slot
// gets its name while its id is 0 and then the id; it is freed by zeroing
// the id first. The probe reads the id, the name, and the id again, and
// uses the name only if both reads found the function's id (a seqlock with
// the id as the sequence).
#define GUARD_SLOTS 8
struct guard_state {
	__u32 count;
	__u32 overflow;
	struct guard_entry slot[GUARD_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_state);
} guard_count SEC(".maps");

// records counts the records submitted (across CPUs, without atomics: it
// only spaces the reader's wakeups).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} records SEC(".maps");

// guard returns the guard state, or NULL when nothing is guarded.
static __always_inline struct guard_state *guard(void)
{
	__u32 zero = 0;
	struct guard_state *g = bpf_map_lookup_elem(&guard_count, &zero);
	return g && g->count ? g : 0;
}

// path_of names the path of a call that returns to ra.
static __always_inline __u8 path_of(__u64 ra)
{
	__u32 zero = 0;
	struct callers *c = bpf_map_lookup_elem(&caller_ranges, &zero);
	if (!c || !ra)
		return PATH_UNKNOWN;
#pragma unroll
	for (int i = 0; i < CALLER_RANGES; i++)
		if (ra - c->r[i].start < c->r[i].end - c->r[i].start) // start <= ra < end
			return c->r[i].path;
	return PATH_UNKNOWN;
}

// bpf_rdonly_cast (a kfunc, Linux >= 6.2) gives a kprobe's untyped pointer
// a BTF type: the verifier then lets the program follow it with plain loads
// (each JIT-compiled with a fault fixup, as fentry's), no helper call. It is
// weak: where the kernel lacks it (Debian's 6.1) the loader leaves its
// address 0 and the verifier drops the branch that uses it.
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#define have_rdonly_cast() (!!bpf_rdonly_cast)

// kprobe_caller returns the probed function's return address: at its entry
// the top of the stack (pt_regs sp). With bpf_rdonly_cast the stack word is
// read as the first member (an unsigned long at offset 0) of a kernel
// struct, rb_node: one plain load.
static __always_inline __u64 kprobe_caller(struct pt_regs *regs)
{
	if (have_rdonly_cast()) {
		struct rb_node *n = bpf_rdonly_cast((void *)PT_REGS_SP(regs), bpf_core_type_id_kernel(struct rb_node));
		return n->__rb_parent_color;
	}
	__u64 ra = 0;
	bpf_probe_read_kernel(&ra, sizeof(ra), (void *)PT_REGS_SP(regs));
	return ra;
}

// kprobe_dev_id returns the kernfs node id of dev's sysfs directory: plain
// loads through bpf_rdonly_cast where the kernel has it, else two
// bpf_probe_read_kernel (BPF_CORE_READ).
static __always_inline __u64 kprobe_dev_id(struct pci_dev *dev)
{
	if (have_rdonly_cast()) {
		struct pci_dev *d = bpf_rdonly_cast(dev, bpf_core_type_id_kernel(struct pci_dev));
		return d->dev.kobj.sd->id;
	}
	return BPF_CORE_READ(dev, dev.kobj.sd, id);
}

// frame_off holds, per fentry access program (key: size, + 4 for a write),
// the distance from its frame pointer to the BPF trampoline's: the same for
// every run of one program, so after the first event one read finds the
// return address (checked every time as below; a failed check walks the
// frames again).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 9);
	__type(key, __u32);
	__type(value, __u64);
} frame_off SEC(".maps");

// fentry_caller returns the traced function's return address, or 0 when
// the frames are not laid out as expected. The program's frame pointer
// (r10, rbp in the x86-64 JIT, which starts every program with push rbp;
// mov rbp, rsp) holds the BPF trampoline's frame pointer, which the
// trampoline set up the same way on entry: above it are the return
// address into the traced function (just after its patched call to the
// trampoline, bpf_get_func_ip + 5, or + 9 after an endbr64) and then the
// traced function's own return address.
//
// scratch (8 bytes of the reserved ring record) turns the frame pointer
// into a number: the verifier lets a privileged program store a pointer
// into memory that is not the stack and read it back as a scalar, on which
// the address arithmetic below is allowed (on the pointer itself it is
// not). The record is this program's alone, so no other CPU writes it.
static __always_inline __u64 fentry_caller(void *ctx, __u32 prog, __u64 *scratch)
{
	__u64 *off = bpf_map_lookup_elem(&frame_off, &prog);
	if (!off)
		return 0;
	__u64 fp, tramp_fp, ra[2], d;
	asm volatile("%0 = r10" : "=r"(fp));
	*(volatile __u64 *)scratch = fp;
	fp = *(volatile __u64 *)scratch;
	__u64 ip = bpf_get_func_ip(ctx);
	__u64 o = *off;
	if (o && bpf_probe_read_kernel(ra, sizeof(ra), (void *)(fp + o + 8)) == 0) {
		d = ra[0] - ip;
		if (d == 5 || d == 9)
			return ra[1];
	}
	if (bpf_probe_read_kernel(&tramp_fp, sizeof(tramp_fp), (void *)fp) < 0 ||
	    bpf_probe_read_kernel(ra, sizeof(ra), (void *)(tramp_fp + 8)) < 0)
		return 0;
	d = ra[0] - ip;
	if (d != 5 && d != 9)
		return 0;
	*off = tramp_fp - fp;
	return ra[1];
}

// copy_name copies e's name into name if e holds id before and after the
// copy (see guard_state).
static __always_inline int copy_name(struct guard_entry *e, __u64 id, __u64 name[2])
{
	if (READ_ONCE(e->id) != id)
		return 0;
	barrier();
	name[0] = READ_ONCE(e->name[0]);
	name[1] = READ_ONCE(e->name[1]);
	barrier();
	return READ_ONCE(e->id) == id;
}

// guarded_name says whether the function whose sysfs directory is the
// kernfs node id is guarded, and gives its name.
static __always_inline int guarded_name(struct guard_state *g, __u64 id, __u64 name[2])
{
	if (!id)
		return 0;
#pragma unroll
	for (int i = 0; i < GUARD_SLOTS; i++)
		if (READ_ONCE(g->slot[i].id) == id)
			return copy_name(&g->slot[i], id, name);
	if (!g->overflow)
		return 0;
	struct guard_entry *e = bpf_map_lookup_elem(&guarded, &id);
	return e && copy_name(e, id, name);
}

// report is called when something is guarded (g); id is the device's
// kernfs node id, ctx the program's context and fentry its kind (for the
// caller).
static __always_inline int report(void *ctx, int fentry, struct guard_state *g, __u64 id, int where, __u8 size, __u8 op, __u32 value,
				  __u8 has_value)
{
	__u64 name[2]; // NAME_LEN bytes, 8-aligned: copied with two stores
	if (!guarded_name(g, id, name))
		return 0;

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	// The frame pointer goes through ts_ns, set right after: see fentry_caller.
	e->path = path_of(fentry ? fentry_caller(ctx, size + (op == OP_WRITE ? 4 : 0), &e->ts_ns) : kprobe_caller(ctx));
	struct task_struct *t = bpf_get_current_task_btf();
	e->ts_ns = bpf_ktime_get_ns();
	// bpf_get_current_cgroup_id as plain loads from the task: the default
	// hierarchy's cgroup, its kernfs node id.
	e->cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	e->tgid = t->tgid;
	e->tid = t->pid;
	e->offset = (__u32)where;
	e->value = value;
	e->size = size;
	e->op = op;
	e->has_value = has_value;
	e->reserved = 0;
	// comm as two 8-byte loads from the task (the verifier allows any load
	// inside a char array of a BTF-typed struct), not a helper's string copy.
	// It is NUL-padded in the task (set with strscpy_pad).
	const __u64 *c = (const __u64 *)t->comm;
	__u64 *ec = (__u64 *)e->comm, *ed = (__u64 *)e->dev; // offsets 40 and 56
	ec[0] = c[0];
	ec[1] = c[1];
	ed[0] = name[0];
	ed[1] = name[1];
	// Wake the reader every WAKEUP_RECORDS records: a wakeup per event
	// costs more than the event. The Go reader also polls the ring every
	// few milliseconds, for what is below the threshold and for a multiple
	// skipped while another CPU counted at the same time.
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&records, &zero), seq = 0;
	if (n)
		*n = seq = *n + 1;
	bpf_ringbuf_submit(e, seq % WAKEUP_RECORDS == 0 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

// kprobes (fallback; also attached as kprobe.multi links). The pci_dev
// pointer is untyped here: kprobe_dev_id reads its node id.
#define KP_REPORT(dev, where, size, op, val, hv)                                                   \
	({                                                                                           \
		struct guard_state *g = guard();                                                     \
		g ? report(ctx, 0, g, kprobe_dev_id(dev), where, size, op, val, hv) : 0;                 \
	})

SEC("kprobe/pci_user_read_config_byte")
int BPF_KPROBE(read_byte, struct pci_dev *dev, int where) { return KP_REPORT(dev, where, 1, OP_READ, 0, 0); }
SEC("kprobe/pci_user_read_config_word")
int BPF_KPROBE(read_word, struct pci_dev *dev, int where) { return KP_REPORT(dev, where, 2, OP_READ, 0, 0); }
SEC("kprobe/pci_user_read_config_dword")
int BPF_KPROBE(read_dword, struct pci_dev *dev, int where) { return KP_REPORT(dev, where, 4, OP_READ, 0, 0); }
SEC("kprobe/pci_user_write_config_byte")
int BPF_KPROBE(write_byte, struct pci_dev *dev, int where, __u8 val) { return KP_REPORT(dev, where, 1, OP_WRITE, val, 1); }
SEC("kprobe/pci_user_write_config_word")
int BPF_KPROBE(write_word, struct pci_dev *dev, int where, __u16 val) { return KP_REPORT(dev, where, 2, OP_WRITE, val, 1); }
SEC("kprobe/pci_user_write_config_dword")
int BPF_KPROBE(write_dword, struct pci_dev *dev, int where, __u32 val) { return KP_REPORT(dev, where, 4, OP_WRITE, val, 1); }

// fentry (preferred). The arguments are typed by the kernel's BTF: the
// verifier lets the program follow dev to its sysfs node's id with plain
// loads (no helper call).
#define FE_REPORT(dev, where, size, op, val, hv)                                                   \
	({                                                                                           \
		struct guard_state *g = guard();                                                     \
		g ? report(ctx, 1, g, dev->dev.kobj.sd->id, where, size, op, val, hv) : 0;           \
	})

SEC("fentry/pci_user_read_config_byte")
int BPF_PROG(fe_read_byte, struct pci_dev *dev, int where) { return FE_REPORT(dev, where, 1, OP_READ, 0, 0); }
SEC("fentry/pci_user_read_config_word")
int BPF_PROG(fe_read_word, struct pci_dev *dev, int where) { return FE_REPORT(dev, where, 2, OP_READ, 0, 0); }
SEC("fentry/pci_user_read_config_dword")
int BPF_PROG(fe_read_dword, struct pci_dev *dev, int where) { return FE_REPORT(dev, where, 4, OP_READ, 0, 0); }
SEC("fentry/pci_user_write_config_byte")
int BPF_PROG(fe_write_byte, struct pci_dev *dev, int where, __u8 val) { return FE_REPORT(dev, where, 1, OP_WRITE, val, 1); }
SEC("fentry/pci_user_write_config_word")
int BPF_PROG(fe_write_word, struct pci_dev *dev, int where, __u16 val) { return FE_REPORT(dev, where, 2, OP_WRITE, val, 1); }
SEC("fentry/pci_user_write_config_dword")
int BPF_PROG(fe_write_dword, struct pci_dev *dev, int where, __u32 val) { return FE_REPORT(dev, where, 4, OP_WRITE, val, 1); }
