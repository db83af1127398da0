/* make bench, Pi projection: a QEMU TCG plugin that counts the guest instructions a user-mode
 * program executes (qemu-aarch64 -plugin ./insn_count.so ./prog ...), printed at exit as
 * "guest_insns N". Inline counting: one add per executed translation block, no callback.
 *
 * Markers: a program can ask for the count so far by seeking any file to offset MARK + i
 * (lseek(fd, 0x4c4d4d41524b0000 + i, SEEK_SET), i < 65536; examples/bench_pages does so around
 * each measured view). The plugin sees the syscall's second argument, whatever the ISA numbers
 * lseek, and prints "mark i N". So one process measures many views: the instructions between two
 * markers, without a second run to subtract.
 *
 * Debian ships no qemu-plugin.h, so the few declarations used are written here for the plugin
 * API of QEMU 7.x (QEMU_PLUGIN_VERSION 1: tb_trans callback without a vcpu index, inline ops
 * on a plain pointer). QEMU checks the exported version at load time and refuses a mismatch.
 *
 * Build: gcc -shared -fPIC -O2 -o insn_count.so bench/insn_count.c
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
                                    void *userdata);
void qemu_plugin_outs(const char *string);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                                              uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                                              uint64_t a8);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);

/* "LMMARK" in the top six bytes: no real offset or pointer argument looks like it. */
#define MARK 0x4c4d4d41524b0000ULL

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* The benchmarked programs are single-threaded in the measured part; a race between vCPU
 * threads could only lose counts of other threads, which the report does not use. */
static uint64_t insns;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    char line[80];
    (void)id, (void)vcpu, (void)num, (void)a1, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7;
    (void)a8;
    if ((a2 & ~0xffffULL) != MARK)
        return;
    snprintf(line, sizeof line, "mark %" PRIu64 " %" PRIu64 "\n", a2 & 0xffff, insns);
    qemu_plugin_outs(line);
}

static void on_exit_(qemu_plugin_id_t id, void *p)
{
    char line[64];
    (void)id;
    (void)p;
    snprintf(line, sizeof line, "guest_insns %" PRIu64 "\n", insns);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
