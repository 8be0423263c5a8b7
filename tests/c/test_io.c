/* File I/O: safetensors and .npy, valid files and hostile ones. */
#define _GNU_SOURCE  /* memmem, mkdtemp */

#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[64];

static int make_tmp_dir(void **state) {
    strcpy(tmp_dir, "/tmp/farol_io_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state) {
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char p[sizeof tmp_dir + sizeof e->d_name];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        remove(p);
    }
    if (d) closedir(d);
    return rmdir(tmp_dir);
}

static const char *tmp_path(const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp_dir, name);
    return p;
}

static void expect_error(const char *want) {
    if (!strstr(farol_last_error(), want))
        fail_msg("expected '%s' in the error, got '%s'", want, farol_last_error());
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void fixture_path(char *p, size_t n, const char *rel) {
    snprintf(p, n, "%s/%s", FAROL_FIXTURES, rel);
}

static void assert_shape(const farol_tensor *t, farol_dtype dt, int ndim, const int64_t *shape) {
    assert_non_null(t);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(t->shape[i], shape[i]);
}

/* ---- safetensors: the fixtures ---- */

static void load_dir(const char *sub) {
    char dir[512], path[1024];
    fixture_path(dir, sizeof dir, sub);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        farol_tensor_dict fd;
        if (farol_load_safetensors(path, &fd) < 0) fail_msg("%s: %s", path, farol_last_error());
        assert_true(fd.n > 0);
        for (int i = 0; i < fd.n; i++) {
            assert_non_null(fd.names[i]);
            assert_non_null(fd.tensors[i]);
            assert_true(farol_is_contiguous(fd.tensors[i]));
        }
        farol_dict_free(&fd);
        assert_int_equal(fd.n, 0);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
}

static void test_load_all_fixtures(void **state) {
    size_t live = farol_live_bytes();
    load_dir("saliency");
    load_dir("ops");
    assert_int_equal(farol_live_bytes(), live);
}

static void test_fixture_linear_scalar(void **state) {
    farol_tensor_dict d = tu_fixture("saliency/linear_scalar.safetensors");
    assert_int_equal(d.n, 6);
    assert_string_equal(d.names[0], "weight");  /* header order is kept */
    assert_shape(farol_dict_get(&d, "weight"), FAROL_F32, 2, (int64_t[]){1, 5});
    assert_shape(farol_dict_get(&d, "bias"), FAROL_F32, 1, (int64_t[]){1});
    assert_shape(farol_dict_get(&d, "expected_signed.1"), FAROL_F32, 2, (int64_t[]){4, 5});
    const float *w = farol_data(farol_dict_get(&d, "weight"));
    assert_true(w[0] == -0.2700727581977844f && w[4] == -0.18836462497711182f);
    assert_string_equal(farol_dict_meta(&d, "case"), "linear_scalar");
    assert_string_equal(farol_dict_meta(&d, "rtol"), "1e-04");
    assert_null(farol_dict_meta(&d, "nope"));
    assert_null(farol_dict_get(&d, "nope"));
    farol_dict_free(&d);
}

static void test_fixture_0d_and_int(void **state) {
    farol_tensor_dict d = tu_fixture("ops/sum.safetensors");
    farol_tensor *out = farol_dict_get(&d, "v1.out");
    assert_shape(out, FAROL_F64, 0, NULL);
    assert_int_equal(farol_numel(out), 1);
    assert_true(farol_item(out) == 7.452212381484061);
    assert_shape(farol_dict_get(&d, "v1.x"), FAROL_F64, 3, (int64_t[]){2, 3, 4});
    assert_string_equal(farol_dict_meta(&d, "op"), "sum");
    farol_dict_free(&d);

    d = tu_fixture("ops/argmax.safetensors");
    out = farol_dict_get(&d, "v1.out");
    assert_shape(out, FAROL_I64, 0, NULL);
    assert_int_equal(*(int64_t *)farol_data(out), 18);
    assert_shape(farol_dict_get(&d, "v2.out"), FAROL_I64, 2, (int64_t[]){2, 4});
    farol_dict_free(&d);

    d = tu_fixture("saliency/softmax_mlp_f64.safetensors");
    farol_tensor *b = farol_dict_get(&d, "lin1.bias");
    assert_shape(b, FAROL_F64, 1, (int64_t[]){20});
    assert_true(((double *)farol_data(b))[0] == 0.27418053150177);
    assert_true(((double *)farol_data(b))[19] == -0.10977498441934586);
    assert_string_equal(farol_dict_meta(&d, "case"), "softmax_mlp_f64");
    farol_dict_free(&d);
}

static void test_load_bad_paths(void **state) {
    farol_tensor_dict d;
    assert_int_equal(farol_load_safetensors("/nonexistent/x.safetensors", &d), -1);
    expect_error("farol: load: /nonexistent/x.safetensors: cannot open");
    assert_int_equal(d.n, 0);
    assert_int_equal(farol_load_safetensors(tmp_dir, &d), -1);
    expect_error("not a regular file");

    /* a fixture cut short on disk: the message names the path */
    char src[512];
    size_t len;
    fixture_path(src, sizeof src, "saliency/linear_scalar.safetensors");
    unsigned char *b = read_all(src, &len);
    const char *p = tmp_path("cut.safetensors");
    write_all(p, b, 1500);  /* whole header (1376 bytes), part of the data */
    assert_int_equal(farol_load_safetensors(p, &d), -1);
    expect_error("farol: load: ");
    expect_error("cut.safetensors: tensor '");
    expect_error("outside the data area (124 bytes)");
    write_all(p, b, 1000);  /* part of the header */
    assert_int_equal(farol_load_safetensors(p, &d), -1);
    expect_error("header length 1368 larger than the file (992 bytes follow it)");
    free(b);
}

/* ---- safetensors: hostile images built in memory ---- */

/* 8-byte length field, header text, data_len bytes of data */
static unsigned char *image(uint64_t hlen_field, const char *json, size_t json_len, size_t data_len,
                            size_t *len) {
    *len = 8 + json_len + data_len;
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, json, json_len);
    for (size_t i = 0; i < data_len; i++) b[8 + json_len + i] = (unsigned char)i;
    return b;
}

static void expect_reject(const unsigned char *b, size_t len, const char *want) {
    farol_tensor_dict d;
    memset(&d, 0xab, sizeof d);
    size_t live = farol_live_bytes();
    if (farol_safetensors_parse(b, len, &d) != -1) fail_msg("accepted; expected '%s'", want);
    expect_error("farol: load: buffer: ");
    expect_error(want);
    assert_int_equal(d.n, 0);
    assert_int_equal(d.n_meta, 0);
    assert_null(d.names);
    assert_null(d.tensors);
    assert_null(d.meta_keys);
    assert_int_equal(farol_live_bytes(), live);
}

static void reject_json(const char *json, size_t data_len, const char *want) {
    size_t len, n = strlen(json);
    unsigned char *b = image(n, json, n, data_len, &len);
    expect_reject(b, len, want);
    free(b);
}

#define T(body) "{\"t\":{" body "}}"

static void test_reject_corrupt_safetensors(void **state) {
    size_t len;
    unsigned char *b = image(2, "{}", 2, 0, &len);
    expect_reject(b, 0, "0 bytes, too short for the 8-byte header length");
    expect_reject(b, 5, "5 bytes, too short");
    free(b);
    b = image(50, "{}", 2, 4, &len);
    expect_reject(b, len, "header length 50 larger than the file (6 bytes follow it)");
    free(b);
    b = image(200000000, "{}", 2, 0, &len);
    expect_reject(b, len, "header length 200000000 exceeds the 100 MB limit");
    free(b);
    b = image(UINT64_MAX, "{}", 2, 0, &len);
    expect_reject(b, len, "exceeds the 100 MB limit");
    free(b);
    b = image(8, "{\"a\"\0:{}}", 8, 0, &len);  /* a NUL inside the header */
    expect_reject(b, len, "header is not valid JSON");
    free(b);

    reject_json("", 0, "header is not valid JSON");
    reject_json("{\"a\": ", 0, "header is not valid JSON");
    reject_json("[1, 2]", 0, "header is not a JSON object");
    reject_json("{} x", 0, "header has bytes after its JSON object (at byte 3)");
    reject_json("{\"a\": 3}", 0, "entry 'a' is not an object");
    reject_json(T("\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                "tensor 't': missing or invalid dtype");
    reject_json(T("\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                "missing or invalid dtype");
    reject_json(T("\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]"), 1,
                "tensor 't': unsupported dtype 'F8_E4M3' (farol reads F32, F64, I64, F16, BF16, I32");
    reject_json(T("\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]"), 12,
                "shape is not an array");
    reject_json(T("\"dtype\":\"F32\",\"data_offsets\":[0,12]"), 12, "shape is not an array");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[3,-1],\"data_offsets\":[0,0]"), 0,
                "shape[1] is not a non-negative integer");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]"), 8,
                "shape[0] is not a non-negative integer");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[\"3\"],\"data_offsets\":[0,12]"), 12,
                "shape[0] is not a non-negative integer");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4,
                "shape has more than 8 dims");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]"), 4,
                "shape overflows the element count");
    reject_json(T("\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,4]"), 4,
                "shape overflows the byte count");
    /* no elements, but strides over the other dims would overflow */
    reject_json(T("\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],"
                  "\"data_offsets\":[0,0]"), 0, "shape overflows the element count");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1]"), 4,
                "data_offsets is not two non-negative integers");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), 8,
                "data_offsets is not two");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]"), 4,
                "data_offsets is not two");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]"), 4,
                "data_offsets is not two");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]"), 4,
                "data_offsets is not two");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), 4,
                "data_offsets is not two");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]"), 8,
                "data_offsets [8, 4] has begin > end");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]"), 8,
                "tensor 't': data_offsets [4, 12] outside the data area (8 bytes)");
    reject_json(T("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8,
                "data_offsets [0, 8] span 8 bytes but F32 [3] needs 12");
    reject_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                "tensors 'a' and 'b' overlap");
    reject_json("{\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                "tensors 'a' and 'b' overlap");
    reject_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                "duplicate tensor name 'a'");
    reject_json("{\"__metadata__\":[1]}", 0, "__metadata__ is not an object");
    reject_json("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of 'k' is not a string");
    reject_json("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate metadata key 'k'");
    reject_json("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");

    farol_tensor_dict d;
    assert_int_equal(farol_safetensors_parse(NULL, 16, &d), -1);
    expect_error("farol: load: buffer: NULL data of 16 bytes");
}

static void test_accept_edge_safetensors(void **state) {
    farol_tensor_dict d;
    size_t len;
    /* no tensors; blank padding; an empty tensor inside another's bytes */
    const char *json = "{}      ";
    unsigned char *b = image(8, json, 8, 0, &len);
    assert_int_equal(farol_safetensors_parse(b, len, &d), 0);
    assert_int_equal(d.n, 0);
    farol_dict_free(&d);
    free(b);

    /* header length 70 is not a multiple of 8: data unaligned in the buffer */
    json = "{\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
           "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t n = strlen(json);
    b = image(n, json, n, 12, &len);  /* 4 trailing bytes nobody uses: allowed */
    float v[2] = {1.5f, -2.25f};
    memcpy(b + 8 + n, v, 8);
    assert_int_equal(farol_safetensors_parse(b, len, &d), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.names[0], "e");
    assert_shape(d.tensors[0], FAROL_F64, 2, (int64_t[]){0, 3});
    assert_shape(d.tensors[1], FAROL_F32, 1, (int64_t[]){2});
    assert_true(((float *)farol_data(d.tensors[1]))[1] == -2.25f);
    assert_int_equal(d.n_meta, 0);
    farol_dict_free(&d);
    free(b);
}

/* Every allocation of a load may fail: -1 and nothing leaked, or success. */
static void test_load_alloc_failures(void **state) {
    char src[512];
    size_t len;
    fixture_path(src, sizeof src, "saliency/linear_scalar.safetensors");
    unsigned char *b = read_all(src, &len);
    size_t live = farol_live_bytes();
    int k;
    for (k = 1; k < 1000; k++) {
        farol_tensor_dict d;
        farol_alloc_fail_at(k);
        int rc = farol_safetensors_parse(b, len, &d);
        farol_alloc_fail_at(0);
        if (rc == 0) {
            farol_dict_free(&d);
            break;
        }
        expect_error("farol: load: buffer: ");
        expect_error("out of memory");
        assert_int_equal(farol_live_bytes(), live);
    }
    assert_true(k > 10 && k < 1000);
    free(b);
}

/* ---- safetensors: saving ---- */

static void assert_same_values(const farol_tensor *got, const farol_tensor *exp) {
    assert_shape(got, exp->dtype, exp->ndim, exp->shape);
    assert_true(farol_is_contiguous(got));
    for (int64_t k = 0; k < farol_numel(exp); k++)
        assert_true(farol_get_flat(got, k) == farol_get_flat(exp, k));
}

static void test_save_load_round_trip(void **state) {
    size_t live = farol_live_bytes();
    farol_manual_seed(7);
    farol_tensor *base = farol_randn(2, (int64_t[]){3, 4}, FAROL_F64);
    farol_tensor *ts[] = {
        farol_randn(2, (int64_t[]){2, 3}, FAROL_F32),
        farol_randn(1, (int64_t[]){5}, FAROL_F64),
        farol_arange(-3, 3, 1, FAROL_I64),
        farol_scalar(2.5, FAROL_F64),
        farol_scalar(-7, FAROL_I64),
        farol_scalar(0.125, FAROL_F32),
        farol_zeros(2, (int64_t[]){0, 3}, FAROL_F32),
        /* the transpose of base, and its column 1 (offset, stride 4) */
        farol_make_view(base, 2, (int64_t[]){4, 3}, (int64_t[]){1, 4}, 0),
        farol_make_view(base, 1, (int64_t[]){3}, (int64_t[]){4}, 1),
    };
    enum { N = sizeof ts / sizeof ts[0] };
    char *names[N] = {"f32", "f64", "i64", "s64", "si64", "s32", "empty", "base.T", "col"};
    for (int i = 0; i < N; i++) assert_non_null(ts[i]);
    assert_false(farol_is_contiguous(ts[7]));
    farol_tensor_dict d = {.n = N, .names = names, .tensors = ts};
    const char *p = tmp_path("round.safetensors");
    if (farol_save_safetensors(p, &d) < 0) fail_msg("%s", farol_last_error());

    size_t len;
    unsigned char *b = read_all(p, &len);
    uint64_t hlen = 0;
    memcpy(&hlen, b, 8);
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(b[8], '{');
    assert_null(memmem(b + 8, hlen, "__metadata__", 12));  /* none when n_meta == 0 */
    free(b);

    farol_tensor_dict back;
    if (farol_load_safetensors(p, &back) < 0) fail_msg("%s", farol_last_error());
    assert_int_equal(back.n, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(back.names[i], names[i]);
        assert_same_values(back.tensors[i], ts[i]);
    }
    assert_true(farol_get_flat(farol_dict_get(&back, "base.T"), 1) == farol_get_flat(base, 4));
    farol_dict_free(&back);
    for (int i = 0; i < N; i++) farol_release(ts[i]);
    farol_release(base);
    assert_int_equal(farol_live_bytes(), live);
}

static void test_save_metadata_round_trip(void **state) {
    farol_tensor *w = farol_full(1, (int64_t[]){3}, 1.25, FAROL_F32);
    char *names[] = {"layer \"one\".weight"};
    char *keys[] = {"case", "quote", "empty", "unicode"};
    char *vals[] = {"round_trip", "he said \"hi\"\n\tand left", "",
                    "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93"};
    farol_tensor_dict d = {1, names, &w, 4, keys, vals, NULL};
    const char *p = tmp_path("meta.safetensors");
    if (farol_save_safetensors(p, &d) < 0) fail_msg("%s", farol_last_error());
    farol_tensor_dict back;
    if (farol_load_safetensors(p, &back) < 0) fail_msg("%s", farol_last_error());
    assert_int_equal(back.n_meta, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(back.meta_keys[i], keys[i]);
        assert_string_equal(farol_dict_meta(&back, keys[i]), vals[i]);
    }
    assert_same_values(farol_dict_get(&back, names[0]), w);
    farol_dict_free(&back);
    farol_release(w);
}

static void test_save_errors(void **state) {
    farol_tensor *a = farol_zeros(1, (int64_t[]){2}, FAROL_F32);
    farol_tensor *ts[] = {a, a};
    char *dup[] = {"x", "x"}, *reserved[] = {"__metadata__"}, *ok[] = {"x", "y"};
    farol_tensor_dict d = {2, dup, ts, 0, NULL, NULL, NULL};
    const char *p = tmp_path("bad.safetensors");

    assert_int_equal(farol_save_safetensors(p, &d), -1);
    expect_error("farol: save: ");
    expect_error("duplicate tensor name 'x'");
    d = (farol_tensor_dict){1, reserved, ts, 0, NULL, NULL, NULL};
    assert_int_equal(farol_save_safetensors(p, &d), -1);
    expect_error("tensor name '__metadata__' is reserved");
    farol_tensor *none[] = {a, NULL};
    d = (farol_tensor_dict){2, ok, none, 0, NULL, NULL, NULL};
    assert_int_equal(farol_save_safetensors(p, &d), -1);
    expect_error("entry 1 has no tensor");
    char *keys[] = {"k", "k"}, *vals[] = {"1", "2"};
    d = (farol_tensor_dict){1, ok, ts, 2, keys, vals, NULL};
    assert_int_equal(farol_save_safetensors(p, &d), -1);
    expect_error("duplicate metadata key 'k'");
    struct stat st;
    assert_int_equal(stat(p, &st), -1);  /* nothing written on a refusal */

    d = (farol_tensor_dict){2, ok, ts, 0, NULL, NULL, NULL};
    assert_int_equal(farol_save_safetensors("/nonexistent/dir/m.safetensors", &d), -1);
    expect_error("farol: save: /nonexistent/dir/m.safetensors: cannot open");

    /* a failed save keeps the previous file and leaves no temporary */
    assert_int_equal(farol_save_safetensors(p, &d), 0);
    farol_tensor *strided = farol_make_view(a, 1, (int64_t[]){2}, (int64_t[]){0}, 0);
    farol_tensor *ts2[] = {a, strided};
    d = (farol_tensor_dict){2, ok, ts2, 0, NULL, NULL, NULL};
    int k;
    for (k = 1; k < 100; k++) {
        farol_alloc_fail_at(k);
        int rc = farol_save_safetensors(p, &d);
        farol_alloc_fail_at(0);
        if (rc == 0) break;
        expect_error("out of memory");
        farol_tensor_dict back;
        assert_int_equal(farol_load_safetensors(p, &back), 0);
        assert_int_equal(back.n, 2);
        farol_dict_free(&back);
    }
    assert_true(k > 1 && k < 100);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_equal(stat(tmp, &st), -1);
    farol_release(strided);
    farol_release(a);
}

/* ---- .npy ---- */

/* magic, version, header length, the dict padded to a multiple of 64, data */
static unsigned char *npy_image(int major, const char *dict, const void *data, size_t nbytes,
                                size_t *len) {
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    size_t hlen = (pre + n + 1 + 63) / 64 * 64 - pre;
    *len = pre + hlen + nbytes;
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + pre, dict, n);
    memset(b + pre + n, ' ', hlen - n - 1);
    b[pre + hlen - 1] = '\n';
    if (nbytes) memcpy(b + pre + hlen, data, nbytes);
    return b;
}

static farol_tensor *npy_from(int major, const char *dict, const void *data, size_t nbytes) {
    size_t len;
    unsigned char *b = npy_image(major, dict, data, nbytes, &len);
    farol_tensor *t = farol_npy_parse(b, len);
    free(b);
    return t;
}

static void test_npy_c_order(void **state) {
    float f[6] = {0, 1, 2, 3, 4, 5};
    farol_tensor *t = npy_from(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
                               sizeof f);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_F32, 2, (int64_t[]){2, 3});
    for (int k = 0; k < 6; k++) assert_true(farol_get_flat(t, k) == k);
    farol_release(t);

    int64_t i[3] = {-1, 0, INT64_MAX};
    t = npy_from(2, "{\"descr\": \"<i8\", \"shape\": (3L,), \"fortran_order\": False}", i,
                 sizeof i);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_I64, 1, (int64_t[]){3});
    assert_memory_equal(farol_data(t), i, sizeof i);
    farol_release(t);

    double s = -0.5;
    t = npy_from(3, "{'descr':'<f8','fortran_order':True,'shape':()}", &s, 8);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_F64, 0, NULL);
    assert_true(farol_item(t) == -0.5);
    farol_release(t);

    t = npy_from(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", NULL, 0);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_F64, 2, (int64_t[]){0, 4});
    farol_release(t);
}

static void test_npy_fortran_order(void **state) {
    /* a[i][j] = 10 i + j stored column by column */
    double f[6] = {0, 10, 1, 11, 2, 12};
    farol_tensor *t = npy_from(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f,
                               sizeof f);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_F64, 2, (int64_t[]){2, 3});
    assert_true(farol_is_contiguous(t));
    for (int k = 0; k < 6; k++) assert_true(farol_get_flat(t, k) == 10 * (k / 3) + k % 3);
    farol_release(t);

    /* (2, 3, 4) int64, a[i][j][k] = 100 i + 10 j + k at i + 2 j + 6 k */
    int64_t g[24];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) g[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
    t = npy_from(1, "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3, 4), }", g, sizeof g);
    if (!t) fail_msg("%s", farol_last_error());
    assert_shape(t, FAROL_I64, 3, (int64_t[]){2, 3, 4});
    const int64_t *v = farol_data(t);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_int_equal(v[12 * i + 4 * j + k], 100 * i + 10 * j + k);
    farol_release(t);
}

static void test_npy_file(void **state) {
    float f[4] = {1, 2, 3, 4};
    size_t len;
    unsigned char *b = npy_image(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f,
                                 sizeof f, &len);
    const char *p = tmp_path("a.npy");
    write_all(p, b, len);
    farol_tensor *t = farol_load_npy(p);
    if (!t) fail_msg("%s", farol_last_error());
    float want[4] = {1, 3, 2, 4};
    assert_memory_equal(farol_data(t), want, sizeof want);
    farol_release(t);
    write_all(p, b, len - 1);
    assert_null(farol_load_npy(p));
    expect_error("farol: load: ");
    expect_error("a.npy: data is 15 bytes but <f4 [2, 2] needs 16");
    assert_null(farol_load_npy("/nonexistent.npy"));
    expect_error("farol: load: /nonexistent.npy: cannot open");
    free(b);
}

static void npy_reject(int major, const char *dict, size_t nbytes, const char *want) {
    static const unsigned char zeros[64];
    assert_null(npy_from(major, dict, zeros, nbytes));
    expect_error("farol: load: buffer: ");
    expect_error(want);
}

static void test_npy_reject(void **state) {
    size_t len;
    unsigned char *b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                                 "abcd", 4, &len);
    assert_null(farol_npy_parse(b, 9));
    expect_error("farol: load: buffer: 9 bytes, too short for a .npy header");
    b[1] = 'n';
    assert_null(farol_npy_parse(b, len));
    expect_error("not a .npy file (bad magic)");
    b[1] = 'N';
    b[6] = 4;
    assert_null(farol_npy_parse(b, len));
    expect_error("unsupported .npy version 4.0");
    b[6] = 2;
    assert_null(farol_npy_parse(b, 11));
    expect_error("11 bytes, too short");
    b[6] = 1;
    b[9] = 0x40;  /* header length > 16 KB */
    assert_null(farol_npy_parse(b, len));
    expect_error("larger than the file");
    free(b);
    assert_null(farol_npy_parse(NULL, 3));
    expect_error("NULL data of 3 bytes");

    const char *F = "'fortran_order': False";
    char d[256];
#define DICT(...) (snprintf(d, sizeof d, __VA_ARGS__), d)
    npy_reject(1, DICT("{'descr': '<c8', %s, 'shape': (1,), }", F), 8,
               "unsupported descr '<c8' (farol reads '<f4', '<f8', '<i8', '<f2'");
    npy_reject(1, DICT("{'descr': '>f4', %s, 'shape': (1,), }", F), 4, "unsupported descr '>f4'");
    npy_reject(1, DICT("{'descr': [('a', '<f4')], %s, 'shape': (1,), }", F), 4,
               "expected a string");
    npy_reject(1, DICT("{'descr': '<f4', %s, }", F), 4, "header lacks 'shape'");
    npy_reject(1, "{'descr': '<f4', 'shape': (1,)}", 4, "header lacks 'fortran_order'");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (1,), 'x': 1}", F), 4,
               "unexpected key 'x' in the header");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (1,), 'shape': (1,)}", F), 4,
               "duplicate key 'shape'");
    npy_reject(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4,
               "expected True or False");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': [1], }", F), 4, "expected a shape tuple");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (-1,), }", F), 4,
               "expected a non-negative integer in the shape");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (1 2), }", F), 4, "expected ',' or ')'");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (1,1,1,1,1,1,1,1,1), }", F), 4,
               "shape has more than 8 dims");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (99999999999999999999,), }", F), 4,
               "shape dim too large");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (4294967296, 4294967296), }", F), 4,
               "shape overflows the element count");
    npy_reject(1, DICT("{'descr': '<f8', %s, 'shape': (2147483648, 2147483648), }", F), 4,
               "shape overflows the byte count");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (0, 4611686018427387904, 4), }", F), 0,
               "shape overflows the element count");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (3,), }", F), 8,
               "data is 8 bytes but <f4 [3] needs 12");
    npy_reject(1, DICT("{'descr': '<f4', %s, 'shape': (1,), } x", F), 4,
               "characters after the dict");
    npy_reject(1, DICT("{'descr' '<f4', %s, 'shape': (1,), }", F), 4, "expected ':'");
    npy_reject(1, "{'descr': '<f4", 4, "unterminated string");
    npy_reject(1, "{'descr': '<\\f4'", 4, "escapes are not supported");
    npy_reject(1, "('descr', '<f4')", 4, "expected '{'");
    npy_reject(1, "{'descr': '<f4' 'shape': (1,)}", 4, "expected ',' or '}'");
#undef DICT
}

static void test_npy_alloc_failures(void **state) {
    double f[6] = {0, 10, 1, 11, 2, 12};
    size_t len, live = farol_live_bytes();
    unsigned char *b = npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f,
                                 sizeof f, &len);
    int k;
    for (k = 1; k < 100; k++) {
        farol_alloc_fail_at(k);
        farol_tensor *t = farol_npy_parse(b, len);
        farol_alloc_fail_at(0);
        if (t) {
            farol_release(t);
            break;
        }
        expect_error("farol: load: buffer: ");
        assert_int_equal(farol_live_bytes(), live);
    }
    assert_true(k > 2 && k < 100);
    free(b);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all_fixtures),
        cmocka_unit_test(test_fixture_linear_scalar),
        cmocka_unit_test(test_fixture_0d_and_int),
        cmocka_unit_test(test_load_bad_paths),
        cmocka_unit_test(test_reject_corrupt_safetensors),
        cmocka_unit_test(test_accept_edge_safetensors),
        cmocka_unit_test(test_load_alloc_failures),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_save_metadata_round_trip),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_npy_c_order),
        cmocka_unit_test(test_npy_fortran_order),
        cmocka_unit_test(test_npy_file),
        cmocka_unit_test(test_npy_reject),
        cmocka_unit_test(test_npy_alloc_failures),
    };
    return tu_run_group(tests, make_tmp_dir, remove_tmp_dir, argc, argv);
}
