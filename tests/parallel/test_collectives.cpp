// test_collectives.cpp — every MpiComm call, blocking and non-blocking, on f32 / f64 / i64,
// against values each rank computes locally; the byte counters (exact counts for known
// calls); argument errors; and SingleProcessComm.
#include <gtest/gtest.h>
#include "core/ops.h"
#include "helpers.h"

namespace skein {
namespace {

using test::world;

// rank r's element i of an n-element test vector (small integers: exact in every dtype).
double value(int r, int64_t i) { return static_cast<double>((r * 7 + i * 3) % 11 - 4); }

Tensor make(int r, int64_t n, DType dt) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(value(r, i));
  return from_vector(v, {n}, dt);
}

const DType kDtypes[] = {DType::f32, DType::f64, DType::i64};

TEST(Collectives, AllReduceSumAndMax) {
  const int p = world().size(), r = world().rank();
  for (DType dt : kDtypes) {
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
      for (bool nonblocking : {false, true}) {
        Tensor t = make(r, 10, dt);
        if (nonblocking) {
          Request req = world().iall_reduce(t, op);
          while (!req.test()) {
          }
          EXPECT_TRUE(req.done());
        } else {
          world().all_reduce(t, op);
        }
        for (int64_t i = 0; i < 10; ++i) {
          double want = op == ReduceOp::sum ? 0.0 : -1e9;
          for (int q = 0; q < p; ++q) want = op == ReduceOp::sum ? want + value(q, i) : std::max(want, value(q, i));
          EXPECT_EQ(t.at({i}), want) << dtype_name(dt) << " " << reduce_op_name(op) << " i=" << i;
        }
      }
    }
  }
}

TEST(Collectives, AllGatherStacksByRank) {
  const int p = world().size(), r = world().rank();
  for (DType dt : kDtypes) {
    Tensor in = make(r, 6, dt).view({2, 3});
    Tensor out = world().all_gather(in);
    ASSERT_EQ(out.shape(), (Shape{p, 2, 3}));
    Tensor flat = zeros({p * 6}, dt);
    Request req = world().iall_gather_into(in, flat);
    req.wait();
    for (int q = 0; q < p; ++q)
      for (int64_t i = 0; i < 6; ++i) {
        EXPECT_EQ(out.at({q, i / 3, i % 3}), value(q, i)) << dtype_name(dt);
        EXPECT_EQ(flat.at({q * 6 + i}), value(q, i)) << dtype_name(dt);
      }
  }
}

// reduce_into: every rank's input summed (or maxed) into the root's output only; the others'
// outputs untouched. Blocking and non-blocking, every root, and the byte count.
TEST(Collectives, ReduceIntoTheRootOnly) {
  const int p = world().size(), r = world().rank();
  for (DType dt : kDtypes)
    for (int root = 0; root < p; ++root) {
      Tensor in = make(r, 5, dt), out = full({5}, -7.0, dt), out2 = full({5}, -7.0, dt);
      world().reduce_into(in, out, root);
      world().ireduce_into(in, out2, root, ReduceOp::max).wait();
      for (int64_t j = 0; j < 5; ++j) {
        double sum = 0, mx = -1e9;
        for (int q = 0; q < p; ++q) {
          sum += value(q, j);
          mx = std::max(mx, value(q, j));
        }
        EXPECT_EQ(out.at({j}), r == root ? sum : -7.0) << dtype_name(dt) << " root " << root;
        EXPECT_EQ(out2.at({j}), r == root ? mx : -7.0) << dtype_name(dt) << " root " << root;
      }
    }
  SingleProcessComm one;
  Tensor a = from_vector({1.0, 2.0}, {2}), b = zeros({2});
  one.reduce_into(a, b, 0);
  EXPECT_EQ(b.at({1}), 2.0);
  EXPECT_EQ(one.stats().get("reduce").bytes_sent, 0);
}

TEST(Collectives, ReduceScatterGivesEachRankItsBlock) {
  const int p = world().size(), r = world().rank();
  for (DType dt : kDtypes) {
    Tensor in = make(r, p * 3 * 2, dt).view({p * 3, 2});
    Tensor out = world().reduce_scatter(in);
    ASSERT_EQ(out.shape(), (Shape{3, 2}));
    Tensor out2 = zeros({6}, dt);
    world().ireduce_scatter_into(in, out2, ReduceOp::max).wait();
    for (int64_t j = 0; j < 6; ++j) {
      double sum = 0, mx = -1e9;
      for (int q = 0; q < p; ++q) {
        sum += value(q, r * 6 + j);
        mx = std::max(mx, value(q, r * 6 + j));
      }
      EXPECT_EQ(out.at({j / 2, j % 2}), sum) << dtype_name(dt);
      EXPECT_EQ(out2.at({j}), mx) << dtype_name(dt);
    }
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  const int p = world().size(), r = world().rank();
  for (int root = 0; root < p; ++root) {
    Tensor t = make(r, 5, DType::f64);
    Tensor u = make(r, 5, DType::i64);
    if (root % 2) world().broadcast(t, root);
    else world().ibroadcast(t, root).wait();
    Request req = world().ibroadcast(u, root);
    req.wait();
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_EQ(t.at({i}), value(root, i));
      EXPECT_EQ(u.at({i}), value(root, i));
    }
  }
}

TEST(Collectives, PointToPoint) {
  const int p = world().size(), r = world().rank();
  const int next = (r + 1) % p, prev = (r + p - 1) % p;
  // Ring shift with isend / irecv.
  Tensor out = make(r, 4, DType::f32), in = zeros({4}, DType::f32);
  Request rr = world().irecv(in, prev, 7);
  Request rs = world().isend(out, next, 7);
  rr.wait();
  rs.wait();
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(in.at({i}), value(prev, i));
  // The same shift with sendrecv (the Ring Attention step).
  Tensor in2 = zeros({4}, DType::i64);
  world().sendrecv(make(r, 4, DType::i64), next, in2, prev, 3);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(in2.at({i}), value(prev, i));
  // Blocking send / recv between pairs (0,1), (2,3), ...: the lower rank sends first.
  const int partner = r ^ 1;
  if (partner < p) {
    Tensor got = zeros({3}, DType::f64);
    if (r < partner) {
      world().send(make(r, 3, DType::f64), partner, 1);
      world().recv(got, partner, 2);
    } else {
      world().recv(got, partner, 1);
      world().send(make(r, 3, DType::f64), partner, 2);
    }
    for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(got.at({i}), value(partner, i));
  }
  world().barrier();
}

// The byte counts of the header's table, for known calls on p ranks.
TEST(Collectives, ByteCountersAreExact) {
  Communicator& c = world();
  const int64_t p = c.size(), r = c.rank();
  c.stats().reset();
  c.all_reduce(zeros({10}, DType::f32));                        // 2 (p-1) ceil(10/p) 4
  c.iall_reduce(zeros({10}, DType::f32), ReduceOp::max).wait();
  c.all_gather(zeros({3}, DType::f64));                         // (p-1) 3 8
  c.reduce_scatter(zeros({p * 5}, DType::f32));                 // (p-1) 5 4
  c.broadcast(zeros({7}, DType::i64), 0);                       // root sends 56, others receive 56
  const int next = static_cast<int>((r + 1) % p), prev = static_cast<int>((r + p - 1) % p);
  Tensor in = zeros({4}, DType::f64);
  c.sendrecv(zeros({4}, DType::f64), next, in, prev);           // 32 each way
  Request rr = c.irecv(zeros({2}, DType::i64), prev);
  c.isend(zeros({2}, DType::i64), next).wait();                 // 16
  rr.wait();
  c.barrier();
  const int64_t ar = 2 * (p - 1) * ((10 + p - 1) / p) * 4;
  const CommStats& s = c.stats();
  EXPECT_EQ(s.get("all_reduce").calls, 2);
  EXPECT_EQ(s.get("all_reduce").bytes_sent, 2 * ar);
  EXPECT_EQ(s.get("all_reduce").bytes_received, 2 * ar);
  EXPECT_EQ(s.get("all_gather").bytes_sent, (p - 1) * 24);
  EXPECT_EQ(s.get("all_gather").bytes_received, (p - 1) * 24);
  EXPECT_EQ(s.get("reduce_scatter").bytes_sent, (p - 1) * 20);
  const int64_t bcast = p > 1 && r == 0 ? 56 : 0;  // nothing moves in a world of one
  EXPECT_EQ(s.get("broadcast").bytes_sent, bcast);
  EXPECT_EQ(s.get("broadcast").bytes_received, p > 1 && r != 0 ? 56 : 0);
  EXPECT_EQ(s.get("sendrecv").bytes_sent, 32);
  EXPECT_EQ(s.get("sendrecv").bytes_received, 32);
  EXPECT_EQ(s.get("send").bytes_sent, 16);
  EXPECT_EQ(s.get("recv").bytes_received, 16);
  EXPECT_EQ(s.get("barrier").calls, 1);
  EXPECT_EQ(s.get("no_such_kind").calls, 0);
  EXPECT_EQ(s.total_sent(), 2 * ar + (p - 1) * 24 + (p - 1) * 20 + bcast + 32 + 16);
  EXPECT_NE(s.str().find("all_gather: 1 calls"), std::string::npos) << s.str();
  c.stats().reset();
  EXPECT_EQ(c.stats().total_sent(), 0);
}

// Argument errors are thrown on every rank before anything is sent (so no rank hangs).
TEST(Collectives, ArgumentErrors) {
  Communicator& c = world();
  const int p = c.size();
  EXPECT_THROW(c.all_gather_into(zeros({3}), zeros({3 * p + 1})), Error);
  if (p > 1) {
    EXPECT_THROW(c.reduce_scatter(zeros({p * 2 + 1, 2})), Error);
  }
  EXPECT_THROW(c.all_reduce(zeros({4, 4}).transpose(0, 1)), Error);
  EXPECT_THROW(c.broadcast(zeros({2}), p), Error);
  EXPECT_THROW(c.send(zeros({2}), -1), Error);
  try {
    c.all_gather_into(zeros({3}, DType::f32), zeros({3 * p}, DType::f64));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("all_gather"), std::string::npos) << e.what();
  }
  c.barrier();  // every rank is still in step
}

// Blocking all-reduce and reduce-scatter in pieces (a 12-byte chunk: 1 to 3 elements a
// call, with a short last piece) give the same values as one call.
TEST(Collectives, ChunkedAllReduceAndReduceScatter) {
  auto c = MpiComm::world();
  c->set_chunk_bytes(12);
  const int p = c->size(), r = c->rank();
  for (DType dt : kDtypes) {
    Tensor t = make(r, 11, dt);
    c->all_reduce(t);
    Tensor in = make(r, p * 7, dt), out = zeros({7}, dt);
    c->reduce_scatter_into(in, out, ReduceOp::max);
    auto sub = c->split(0, -r);  // reversed order; inherits the chunk size
    Tensor t2 = make(r, 5, dt);
    sub->all_reduce(t2);
    for (int64_t i = 0; i < 11; ++i) {
      double sum = 0, mx = -1e9, sum5 = 0;
      for (int q = 0; q < p; ++q) {
        sum += value(q, i);
        if (i < 7) mx = std::max(mx, value(q, r * 7 + i));
        if (i < 5) sum5 += value(q, i);
      }
      EXPECT_EQ(t.at({i}), sum) << dtype_name(dt) << " i=" << i;
      if (i < 7) {
        EXPECT_EQ(out.at({i}), mx) << dtype_name(dt) << " i=" << i;
      }
      if (i < 5) {
        EXPECT_EQ(t2.at({i}), sum5) << dtype_name(dt) << " i=" << i;
      }
    }
    EXPECT_EQ(sub->rank(), p - 1 - r);
    EXPECT_EQ(static_cast<MpiComm*>(sub.get())->chunk_bytes(), 12);
  }
}

TEST(Collectives, DroppedRequestIsWaitedFor) {
  Tensor t = full({1000}, 1.0, DType::f64);
  { Request req = world().iall_reduce(t); }  // destructor waits
  EXPECT_EQ(t.at({999}), world().size());
}

TEST(SingleProcess, CollectivesAreIdentitiesAndCountNoBytes) {
  SingleProcessComm c;
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.rank(), 0);
  Tensor t = make(0, 6, DType::f32);
  c.all_reduce(t, ReduceOp::max);
  c.iall_reduce(t).wait();
  c.broadcast(t, 0);
  EXPECT_EQ(test::rel_diff(t, make(0, 6, DType::f32)), 0);
  Tensor g = c.all_gather(t.view({2, 3}));
  EXPECT_EQ(g.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(test::rel_diff(g.view({6}), t), 0);
  Tensor rs = c.reduce_scatter(t.view({3, 2}));
  EXPECT_EQ(test::rel_diff(rs.view({6}), t), 0);
  EXPECT_EQ(c.stats().total_sent(), 0);  // collectives of one rank move nothing
  EXPECT_EQ(c.stats().total_received(), 0);
  // Messages to self: queued by send, taken by recv in order per tag.
  c.send(full({2}, 1.0, DType::i64), 0, 5);
  c.isend(full({2}, 2.0, DType::i64), 0, 5).wait();
  Tensor a = zeros({2}, DType::i64), b = zeros({2}, DType::i64), d = zeros({2}, DType::i64);
  c.recv(a, 0, 5);
  Request pending = c.irecv(d, 0, 9);
  EXPECT_FALSE(pending.test());  // nothing with tag 9 yet
  c.send(full({2}, 3.0, DType::i64), 0, 9);
  EXPECT_TRUE(pending.test());
  c.recv(b, 0, 5);
  EXPECT_EQ(a.at({0}), 1);
  EXPECT_EQ(b.at({1}), 2);
  EXPECT_EQ(d.at({0}), 3);
  EXPECT_THROW(c.recv(a, 0, 5), Error);  // would deadlock: no message left
  Tensor in = zeros({3});
  c.sendrecv(full({3}, 4.0), 0, in, 0);
  EXPECT_EQ(in.at({2}), 4);
  c.barrier();
  EXPECT_EQ(c.stats().get("all_reduce").calls, 2);
  EXPECT_EQ(c.stats().get("send").calls, 3);
  EXPECT_EQ(c.stats().get("send").bytes_sent, 3 * 16);  // messages count their bytes, even to self
  EXPECT_EQ(c.stats().get("sendrecv").bytes_received, 12);
  auto sub = c.split(0, 0);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_STREQ(sub->backend_name(), "single");
}

}  // namespace
}  // namespace skein
