/*
 * TEST DOUBLE of libnvidia-ml.so.1 (NVIDIA's NVML), for machines without an NVIDIA GPU.
 *
 * Built at test time against the real nvml.h (PyPI package nvidia-nvml-dev) and loaded by the
 * real pynvml (nvidia-ml-py) exactly as the real library is: dlopen("libnvidia-ml.so.1").
 * It answers the NVML calls airig's probe makes from a JSON file named by $FAKE_NVML_CONFIG,
 * re-read at every nvmlInit, so one loaded copy can play many boxes:
 *
 *   {"init": "SUCCESS" | "DRIVER_NOT_LOADED" | "LIB_RM_VERSION_MISMATCH" | "NO_PERMISSION",
 *    "driver_version": "575.57.08", "nvml_version": "12.575.57.08", "cuda_driver_version": 12090,
 *    "gpus": [{"name": "...", "uuid": "GPU-...", "serial": null, "memory_total": <bytes>,
 *              "memory_used": <bytes>, "memory_reserved": <bytes>, "cc": [12, 0],
 *              "pcie_gen": [cur, max], "pcie_width": [cur, max], "persistence": 1,
 *              "power_limit_mw": 575000, "power_default_mw": 575000, "power_min_mw": 400000,
 *              "power_max_mw": 600000, "ecc": [cur, pending], "mig": [cur, pending],
 *              "temperature": 34, "bar1_total": <bytes>, "processes": [[pid, bytes]],
 *              "power_mw": 412000, "clocks_mhz": {"sm": 2700, "mem": 14001, "graphics": 2700},
 *              "clock_event_reasons": <NVML bitmask>, "utilization": [gpu %, memory %],
 *              "ecc_errors": [corrected, uncorrected], "lost": false}]}
 *
 * A field that is null or absent answers NVML_ERROR_NOT_SUPPORTED (as GeForce cards do for
 * serial, ECC and MIG); "lost": true answers NVML_ERROR_GPU_IS_LOST for every query on that GPU.
 * "display_active": 1 says the GPU drives a display. "p2p": an nvmlGpuP2PStatus_t code (0 OK,
 * 5 not supported as on GeForce cards) for peer-to-peer with any other GPU; a pair answers the
 * worse (higher) of its two codes.
 *
 * Time series (burn-in tests): with a top-level "step_ms": N, a GPU's "series": [{...}, ...]
 * overrides its fields step by step, step k starting k x N ms after nvmlInit; a step's fields
 * stay until a later step changes them, and the last step holds. A step's "xid": 79 is an XID
 * critical error event, delivered once through nvmlEventSetWait_v2.
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>

#include <ctype.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

/* ---- a minimal JSON reader: objects, arrays, strings, numbers, true/false/null ---------- */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jval {
    jtype type;
    double num;
    char *str;             /* J_STR */
    struct jval **items;   /* J_ARR values, J_OBJ values */
    char **keys;           /* J_OBJ keys */
    int len;
} jval;

static const char *jp;

static void jskip(void) { while (*jp && isspace((unsigned char)*jp)) jp++; }

static jval *jnew(jtype t) {
    jval *v = calloc(1, sizeof(jval));
    v->type = t;
    return v;
}

static jval *jparse(void);

static char *jstring(void) {
    /* jp at opening quote; escapes kept simple: \" \\ \/ \n \t */
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    jp++;
    while (*jp && *jp != '"') {
        char c = *jp++;
        if (c == '\\' && *jp) {
            char e = *jp++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
        if (n + 2 > cap) out = realloc(out, cap *= 2);
        out[n++] = c;
    }
    if (*jp == '"') jp++;
    out[n] = '\0';
    return out;
}

static jval *jparse(void) {
    jskip();
    if (*jp == '{' || *jp == '[') {
        int obj = *jp == '{';
        jval *v = jnew(obj ? J_OBJ : J_ARR);
        jp++;
        for (;;) {
            jskip();
            if (*jp == '}' || *jp == ']') { jp++; break; }
            if (*jp == ',') { jp++; continue; }
            if (!*jp) break;
            char *key = NULL;
            if (obj) {
                key = jstring();
                jskip();
                if (*jp == ':') jp++;
            }
            v->items = realloc(v->items, sizeof(jval *) * (v->len + 1));
            v->keys = realloc(v->keys, sizeof(char *) * (v->len + 1));
            v->keys[v->len] = key;
            v->items[v->len++] = jparse();
        }
        return v;
    }
    if (*jp == '"') { jval *v = jnew(J_STR); v->str = jstring(); return v; }
    if (!strncmp(jp, "true", 4)) { jp += 4; jval *v = jnew(J_BOOL); v->num = 1; return v; }
    if (!strncmp(jp, "false", 5)) { jp += 5; return jnew(J_BOOL); }
    if (!strncmp(jp, "null", 4)) { jp += 4; return jnew(J_NULL); }
    jval *v = jnew(J_NUM);
    char *end;
    v->num = strtod(jp, &end);
    jp = end > jp ? end : jp + 1;
    return v;
}

static jval *jget(const jval *obj, const char *key) {
    if (!obj || obj->type != J_OBJ) return NULL;
    for (int i = 0; i < obj->len; i++)
        if (!strcmp(obj->keys[i], key)) return obj->items[i];
    return NULL;
}

static int jpresent(const jval *v) { return v && v->type != J_NULL; }

/* ---- state ------------------------------------------------------------------------------ */
struct nvmlDevice_st { int index; };
#define MAX_GPUS 64
static struct nvmlDevice_st devices[MAX_GPUS];
static jval *config;
static int initialized;

static nvmlReturn_t init_result(void) {
    jval *init = jget(config, "init");
    if (!jpresent(init) || init->type != J_STR || !strcmp(init->str, "SUCCESS")) return NVML_SUCCESS;
    if (!strcmp(init->str, "DRIVER_NOT_LOADED")) return NVML_ERROR_DRIVER_NOT_LOADED;
    if (!strcmp(init->str, "LIB_RM_VERSION_MISMATCH")) return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
    if (!strcmp(init->str, "NO_PERMISSION")) return NVML_ERROR_NO_PERMISSION;
    return NVML_ERROR_UNKNOWN;
}

static nvmlReturn_t load_config(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path) return NVML_ERROR_DRIVER_NOT_LOADED;
    FILE *f = fopen(path, "rb");
    if (!f) return NVML_ERROR_DRIVER_NOT_LOADED;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)size + 1);
    if (fread(text, 1, (size_t)size, f) != (size_t)size) { fclose(f); free(text); return NVML_ERROR_UNKNOWN; }
    fclose(f);
    jp = text;
    config = jparse(); /* leaked on purpose: tiny, test-only */
    for (int i = 0; i < MAX_GPUS; i++) devices[i].index = i;
    return init_result();
}

static jval *gpus(void) { jval *g = jget(config, "gpus"); return g && g->type == J_ARR ? g : NULL; }

static double started_at;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The time-series step in force: 0 without "step_ms". */
static int step_now(void) {
    jval *ms = jget(config, "step_ms");
    if (!jpresent(ms) || ms->type != J_NUM || ms->num <= 0) return 0;
    return (int)((now_s() - started_at) * 1000.0 / ms->num);
}

/* A GPU's field as it stands now: the latest series step that sets it, else the GPU's own. */
static jval *gfield(jval *gpu, const char *name) {
    jval *series = jget(gpu, "series");
    if (series && series->type == J_ARR && series->len > 0) {
        int step = step_now();
        for (int i = step < series->len ? step : series->len - 1; i >= 0; i--) {
            jval *v = jget(series->items[i], name);
            if (v) return v;
        }
    }
    return jget(gpu, name);
}

static int gpu_count(void) { jval *g = gpus(); return g ? g->len : 0; }

/* Resolve a handle to its GPU object, or an NVML error. */
static nvmlReturn_t gpu_of(nvmlDevice_t device, jval **out) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || device->index < 0 || device->index >= gpu_count()) return NVML_ERROR_INVALID_ARGUMENT;
    jval *gpu = gpus()->items[device->index];
    jval *lost = gfield(gpu, "lost");
    if (lost && lost->type == J_BOOL && lost->num) return NVML_ERROR_GPU_IS_LOST;
    *out = gpu;
    return NVML_SUCCESS;
}

#define GPU_OR_RETURN(dev, var) jval *var = NULL; { nvmlReturn_t r_ = gpu_of(dev, &var); if (r_) return r_; }
#define FIELD_OR_UNSUPPORTED(gpu, name, var) jval *var = gfield(gpu, name); if (!jpresent(var)) return NVML_ERROR_NOT_SUPPORTED;

static nvmlReturn_t copy_str(const jval *v, char *buf, unsigned int length) {
    if (!jpresent(v) || v->type != J_STR) return NVML_ERROR_NOT_SUPPORTED;
    if (strlen(v->str) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(buf, v->str);
    return NVML_SUCCESS;
}

static double item(const jval *arr, int i) {
    return arr && arr->type == J_ARR && i < arr->len ? arr->items[i]->num : 0;
}

/* ---- the NVML entry points pynvml looks up ------------------------------------------------ */
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    nvmlReturn_t r = load_config();
    initialized = r == NVML_SUCCESS;
    started_at = now_s();
    return r;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_str(jget(config, "driver_version"), version, length);
}
nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_str(jget(config, "nvml_version"), version, length);
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    jval *c = jget(config, "cuda_driver_version");
    if (!jpresent(c)) return NVML_ERROR_NOT_SUPPORTED;
    *v = (int)c->num;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *count = (unsigned int)gpu_count();
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)gpu_count()) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    jval *lost = gfield(gpus()->items[index], "lost");
    if (lost && lost->type == J_BOOL && lost->num) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    GPU_OR_RETURN(d, gpu);
    return copy_str(gfield(gpu, "name"), name, length);
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    GPU_OR_RETURN(d, gpu);
    return copy_str(gfield(gpu, "uuid"), uuid, length);
}
nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char *serial, unsigned int length) {
    GPU_OR_RETURN(d, gpu);
    return copy_str(gfield(gpu, "serial"), serial, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "memory_total", total);
    jval *used = gfield(gpu, "memory_used");
    m->total = (unsigned long long)total->num;
    m->used = jpresent(used) ? (unsigned long long)used->num : 0;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    nvmlMemory_t v1;
    nvmlReturn_t r = nvmlDeviceGetMemoryInfo(d, &v1);
    if (r) return r;
    jval *gpu = gpus()->items[d->index];
    jval *reserved = gfield(gpu, "memory_reserved");
    m->total = v1.total;
    m->reserved = jpresent(reserved) ? (unsigned long long)reserved->num : 0;
    m->used = v1.used;
    m->free = v1.total - v1.used - m->reserved;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t d, nvmlBAR1Memory_t *b) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "bar1_total", total);
    b->bar1Total = (unsigned long long)total->num;
    b->bar1Used = 0;
    b->bar1Free = b->bar1Total;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "cc", cc);
    *major = (int)item(cc, 0);
    *minor = (int)item(cc, 1);
    return NVML_SUCCESS;
}

#define PAIR_GETTER(fn, field, idx)                                  \
    nvmlReturn_t fn(nvmlDevice_t d, unsigned int *out) {             \
        GPU_OR_RETURN(d, gpu);                                       \
        FIELD_OR_UNSUPPORTED(gpu, field, pair);                      \
        *out = (unsigned int)item(pair, idx);                        \
        return NVML_SUCCESS;                                         \
    }
PAIR_GETTER(nvmlDeviceGetCurrPcieLinkGeneration, "pcie_gen", 0)
PAIR_GETTER(nvmlDeviceGetMaxPcieLinkGeneration, "pcie_gen", 1)
PAIR_GETTER(nvmlDeviceGetCurrPcieLinkWidth, "pcie_width", 0)
PAIR_GETTER(nvmlDeviceGetMaxPcieLinkWidth, "pcie_width", 1)

#define UINT_GETTER(fn, field)                                       \
    nvmlReturn_t fn(nvmlDevice_t d, unsigned int *out) {             \
        GPU_OR_RETURN(d, gpu);                                       \
        FIELD_OR_UNSUPPORTED(gpu, field, v);                         \
        *out = (unsigned int)v->num;                                 \
        return NVML_SUCCESS;                                         \
    }
UINT_GETTER(nvmlDeviceGetPowerManagementLimit, "power_limit_mw")
UINT_GETTER(nvmlDeviceGetPowerManagementDefaultLimit, "power_default_mw")
UINT_GETTER(nvmlDeviceGetPowerUsage, "power_mw")

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, nvmlClockType_t type, unsigned int *clock) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "clocks_mhz", clocks);
    const char *key = type == NVML_CLOCK_SM ? "sm" : type == NVML_CLOCK_MEM ? "mem"
                    : type == NVML_CLOCK_GRAPHICS ? "graphics" : NULL;
    jval *v = key ? jget(clocks, key) : NULL;
    if (!v || v->type != J_NUM) return NVML_ERROR_NOT_SUPPORTED;
    *clock = (unsigned int)v->num;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *reasons) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "clock_event_reasons", v);
    *reasons = (unsigned long long)v->num;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *reasons) {
    return nvmlDeviceGetCurrentClocksEventReasons(d, reasons);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *util) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "utilization", u);
    util->gpu = (unsigned int)item(u, 0);
    util->memory = (unsigned int)item(u, 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, nvmlMemoryErrorType_t type,
                                         nvmlEccCounterType_t counter, unsigned long long *count) {
    GPU_OR_RETURN(d, gpu);
    (void)counter; /* volatile and aggregate alike: the double has one life */
    FIELD_OR_UNSUPPORTED(gpu, "ecc_errors", e);
    *count = (unsigned long long)item(e, type == NVML_MEMORY_ERROR_TYPE_CORRECTED ? 0 : 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t d, unsigned int *min,
                                                          unsigned int *max) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "power_min_mw", lo);
    FIELD_OR_UNSUPPORTED(gpu, "power_max_mw", hi);
    *min = (unsigned int)lo->num;
    *max = (unsigned int)hi->num;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t d, nvmlEnableState_t *mode) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "persistence", p);
    *mode = p->num ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t d, nvmlEnableState_t *cur, nvmlEnableState_t *pending) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "ecc", ecc);
    *cur = item(ecc, 0) ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    *pending = item(ecc, 1) ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pending) {
    GPU_OR_RETURN(d, gpu);
    FIELD_OR_UNSUPPORTED(gpu, "mig", mig);
    *cur = (unsigned int)item(mig, 0);
    *pending = (unsigned int)item(mig, 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t sensor, unsigned int *t) {
    GPU_OR_RETURN(d, gpu);
    if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    FIELD_OR_UNSUPPORTED(gpu, "temperature", temp);
    *t = (unsigned int)temp->num;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    GPU_OR_RETURN(d, gpu);
    jval *procs = gfield(gpu, "processes");
    unsigned int n = procs && procs->type == J_ARR ? (unsigned int)procs->len : 0;
    if (n == 0) { *count = 0; return NVML_SUCCESS; }
    if (!infos || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < n; i++) {
        memset(&infos[i], 0, sizeof(nvmlProcessInfo_t));
        infos[i].pid = (unsigned int)item(procs->items[i], 0);
        infos[i].usedGpuMemory = (unsigned long long)item(procs->items[i], 1);
        infos[i].gpuInstanceId = 0xFFFFFFFF;
        infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDisplayActive(nvmlDevice_t d, nvmlEnableState_t *active) {
    GPU_OR_RETURN(d, gpu);
    jval *v = gfield(gpu, "display_active");
    *active = jpresent(v) && v->num ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t a, nvmlDevice_t b, nvmlGpuP2PCapsIndex_t index,
                                    nvmlGpuP2PStatus_t *status) {
    GPU_OR_RETURN(a, ga);
    GPU_OR_RETURN(b, gb);
    (void)index;
    FIELD_OR_UNSUPPORTED(ga, "p2p", pa);
    FIELD_OR_UNSUPPORTED(gb, "p2p", pb);
    *status = (nvmlGpuP2PStatus_t)(pa->num > pb->num ? pa->num : pb->num);
    return NVML_SUCCESS;
}

/* ---- XID events from the time series ------------------------------------------------------ */
struct nvmlEventSet_st { unsigned char delivered[MAX_GPUS][256]; };

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *set = calloc(1, sizeof(struct nvmlEventSet_st));
    return *set ? NVML_SUCCESS : NVML_ERROR_MEMORY;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    GPU_OR_RETURN(d, gpu);
    (void)gpu;
    *types = nvmlEventTypeXidCriticalError;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
    GPU_OR_RETURN(d, gpu);
    (void)gpu;
    (void)types;
    return set ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    int step = step_now();
    for (int g = 0; g < gpu_count() && g < MAX_GPUS; g++) {
        jval *series = jget(gpus()->items[g], "series");
        if (!series || series->type != J_ARR) continue;
        for (int i = 0; i <= step && i < series->len && i < 256; i++) {
            jval *xid = jget(series->items[i], "xid");
            if (!jpresent(xid) || set->delivered[g][i]) continue;
            set->delivered[g][i] = 1;
            memset(data, 0, sizeof(*data));
            data->device = &devices[g];
            data->eventType = nvmlEventTypeXidCriticalError;
            data->eventData = (unsigned long long)xid->num;
            data->gpuInstanceId = 0xFFFFFFFF;
            data->computeInstanceId = 0xFFFFFFFF;
            return NVML_SUCCESS;
        }
    }
    struct timespec ts = {(time_t)(timeoutms / 1000), (long)(timeoutms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    free(set);
    return NVML_SUCCESS;
}
