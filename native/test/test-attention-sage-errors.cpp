// Bad input to slip_attn_sage and slip_attn_sage_backward: each gives its status and a sentence
// naming the argument ("expected X for <argument>, got Y"), never a crash.
#include <cstring>

#include "test-attention-sage-ref.h"

namespace {

struct Case {
    std::vector<float> q, k, v, out, lse, dout, dq, dk, dv;
    slip_tensor tq, tk, tv, to, tl, tdo, tdq, tdk, tdv;
    slip_attn_params p;
    slip_sage_params sp;
    explicit Case(int64_t D = 16, int64_t N = 20) {
        for (auto *x : {&q, &k, &v, &out, &dout, &dq, &dk, &dv}) x->assign(2 * N * D, 0.5f);
        lse.assign(2 * N, 0.0f);
        tq = sref::tensor({1, 2, N, D}, q.data(), SLIP_DTYPE_F32);
        tk = sref::tensor({1, 2, N, D}, k.data(), SLIP_DTYPE_F32);
        tv = sref::tensor({1, 2, N, D}, v.data(), SLIP_DTYPE_F32);
        to = sref::tensor({1, 2, N, D}, out.data(), SLIP_DTYPE_F32);
        tdo = sref::tensor({1, 2, N, D}, dout.data(), SLIP_DTYPE_F32);
        tdq = sref::tensor({1, 2, N, D}, dq.data(), SLIP_DTYPE_F32);
        tdk = sref::tensor({1, 2, N, D}, dk.data(), SLIP_DTYPE_F32);
        tdv = sref::tensor({1, 2, N, D}, dv.data(), SLIP_DTYPE_F32);
        tl = sref::tensor({1, 2, N}, lse.data(), SLIP_DTYPE_F32);
        slip_attn_params_init(&p);
        slip_sage_params_init(&sp);
    }
    slip_status forward() { return slip_attn_sage(&tq, &tk, &tv, nullptr, &p, &sp, &to, &tl); }
    slip_status backward() {
        return slip_attn_sage_backward(&tq, &tk, &tv, &to, &tdo, &tl, nullptr, &p, &sp, &tdq,
                                       &tdk, &tdv);
    }
};

void expect(slip_status got, slip_status want, const char *needle) {
    CHECK_MSG(got == want && std::strstr(slip_last_error(), needle) != nullptr,
              "status %s, message \"%s\" (wanted %s with \"%s\")",
              slip_status_string(got), slip_last_error(), slip_status_string(want), needle);
}

}  // namespace

int main() {
    { Case c; CHECK_OK(c.forward()); CHECK_OK(c.backward()); }
    { Case c(300); expect(c.forward(), SLIP_STATUS_SHAPE_MISMATCH, "head dim"); }
    { Case c; c.q[7] = NAN; expect(c.forward(), SLIP_STATUS_NON_FINITE, "in q"); }
    { Case c; c.v[3] = INFINITY; expect(c.forward(), SLIP_STATUS_NON_FINITE, "in v"); }
    { Case c; c.dout[3] = NAN; expect(c.backward(), SLIP_STATUS_NON_FINITE, "in d_out"); }
    { Case c; c.lse[1] = NAN; expect(c.backward(), SLIP_STATUS_NON_FINITE, "in lse"); }
    { Case c; c.lse[1] = -INFINITY; CHECK_OK(c.backward()); }  // a row that saw nothing
    { Case c; c.tk.dtype = SLIP_DTYPE_F16; expect(c.forward(), SLIP_STATUS_DTYPE_MISMATCH, "for k"); }
    { Case c; c.tk.shape[0] = 2; expect(c.forward(), SLIP_STATUS_SHAPE_MISMATCH, "for k"); }
    { Case c; c.tdk = sref::tensor({1, 2, 19, 16}, c.dk.data(), SLIP_DTYPE_F32); expect(c.backward(), SLIP_STATUS_SHAPE_MISMATCH, "for dk"); }
    { Case c; c.sp.variant = 4; expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "sage_params.variant"); }
    { Case c; c.sp.granularity = -1; expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "sage_params.granularity"); }
    { Case c; c.sp.warp_q = 12; expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "sage_params.warp_q"); }
    { Case c; c.sp.block_k = 48; expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "sage_params.block_k"); }
    {
        Case c;
        c.sp.variant = SLIP_SAGE_VARIANT_SAGE2PP;
        c.sp.block_k = 128;
        expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "65504");
    }
    { Case c; c.sp.smooth_q = 2; expect(c.forward(), SLIP_STATUS_INVALID_ARGUMENT, "sage_params.smooth_q"); }
    {
        Case c;
        expect(slip_attn_sage(&c.tq, &c.tk, &c.tv, nullptr, &c.p, nullptr, &c.to, &c.tl),
               SLIP_STATUS_INVALID_ARGUMENT, "sage_params");
        expect(slip_attn_sage_backward(&c.tq, &c.tk, &c.tv, &c.to, &c.tdo, nullptr, nullptr, &c.p,
                                       &c.sp, &c.tdq, &c.tdk, &c.tdv),
               SLIP_STATUS_INVALID_ARGUMENT, "lse");
    }
    return slip_test::report("test-attention-sage-errors");
}
