// The torch checkpoint reader on hand-made archives: strided and offset tensors, deflated entries,
// and the ways a checkpoint can be broken or hostile (truncated, corrupt zip, forbidden globals).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "checkpoint/checkpoint_test_util.h"
#include "common/fixtures.h"
#include "common/reference_data.h"
#include "diffuse/error.hpp"
#include "io/pickle/pickle_reader.h"
#include "io/pickle/torch_checkpoint.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) {
  return (fs::path(test::temp_dir()) / name).string();
}

// Expects read_torch_checkpoint(path) to throw a FileError whose message names the file and
// contains `needle`.
void expect_file_error(const std::string& path, const std::string& needle) {
  try {
    read_torch_checkpoint(path);
    ADD_FAILURE() << path << ": no error";
  } catch (const FileError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::string strided_pickle() {
  test::PickleWriter p;
  p.op('}').op('(').str("global_step").integer(0).str("state_dict").op('}').op('(');
  p.str("strided").float_tensor("0", 7, 1, {2, 3}, {1, 2});  // transposed view, offset 1
  p.str("dense").float_tensor("0", 7, 4, {3}, {1});
  p.str("scalar").float_tensor("1", 1, 0, {}, {});
  p.op('u').op('u');
  return p.done();
}

}  // namespace

TEST(pickle_checkpoint, strided_offset_and_scalar_tensors) {
  for (bool deflate : {false, true}) {
    const std::string path = tmp(deflate ? "strided_deflate.ckpt" : "strided.ckpt");
    test::write_zip(path,
                    {{"archive/data.pkl", strided_pickle()},
                     {"archive/data/0", test::floats_bytes({0, 1, 2, 3, 4, 5, 6})},
                     {"archive/data/1", test::floats_bytes({42})},
                     {"archive/version", "3\n"}},
                    deflate);
    const auto sd = read_torch_checkpoint(path);
    ASSERT_EQ(sd.size(), 3u) << "global_step is not a tensor";
    const Tensor s = sd.at("strided").contiguous();
    ASSERT_EQ(s.shape(), Shape({2, 3}));
    const float want[] = {1, 3, 5, 2, 4, 6};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(s.f32()[i], want[i]) << i;
    const Tensor d = sd.at("dense").contiguous();
    ASSERT_EQ(d.shape(), Shape({3}));
    EXPECT_EQ(d.f32()[0], 4);
    EXPECT_EQ(d.f32()[2], 6);
    EXPECT_EQ(sd.at("scalar").ndim(), 0);
    EXPECT_EQ(sd.at("scalar").item(), 42);
  }
}

TEST(pickle_checkpoint, forbidden_global_is_refused_not_run) {
  const std::string marker = tmp("pwned");
  fs::remove(marker);
  // os.system("touch <marker>") through GLOBAL + REDUCE, as a malicious .ckpt would.
  test::PickleWriter p;
  p.global("os", "system").str("touch " + marker).op('\x85').op('R');
  const std::string path = tmp("evil.ckpt");
  test::write_zip(path, {{"archive/data.pkl", p.done()}});
  expect_file_error(path, "os.system");
  EXPECT_FALSE(fs::exists(marker));

  // The same through STACK_GLOBAL (protocol 4), and builtins.eval inside a valid-looking dict.
  std::string s4 = std::string("\x80\x04", 2) + "\x8c\x08" + "builtins" + "\x8c\x04" + "eval" +
                   "\x93" + "X" + std::string("\x03\x00\x00\x00", 4) + "1+1" + "\x85" + "R.";
  test::write_zip(path, {{"archive/data.pkl", s4}});
  expect_file_error(path, "builtins.eval");

  // A storage class is allowed in persistent ids but cannot be called.
  test::PickleWriter q;
  q.global("torch", "FloatStorage").op(')').op('R');
  test::write_zip(path, {{"archive/data.pkl", q.done()}});
  expect_file_error(path, "torch.FloatStorage");
  // Opcodes outside the torch.save subset (INST 'i' would construct any class).
  test::write_zip(path, {{"archive/data.pkl", std::string("\x80\x02(ios\nsystem\n.", 15)}});
  expect_file_error(path, "opcode");
}

TEST(pickle_checkpoint, truncated_checkpoint_is_a_file_error) {
  std::ifstream in(test::fixture("models/tiny-sd1.ckpt"), std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(all.size(), 100000u);
  const std::string path = tmp("truncated.ckpt");
  for (size_t keep :
       {size_t{0}, size_t{3}, size_t{30}, size_t{5000}, all.size() / 2, all.size() - 30}) {
    std::ofstream(path, std::ios::binary).write(all.data(), static_cast<std::streamsize>(keep));
    expect_file_error(path, "");
  }
}

TEST(pickle_checkpoint, corrupt_zip_is_a_file_error) {
  std::ifstream in(test::fixture("models/tiny-sd1.ckpt"), std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string path = tmp("corrupt.ckpt");
  const size_t eocd = all.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(eocd, std::string::npos);
  // Central directory offset pointing past the end; entry count too large; local header offsets
  // of the first entry scrambled; data.pkl bytes garbled.
  auto write_with = [&](size_t at, const std::string& bytes) {
    std::string c = all;
    c.replace(at, bytes.size(), bytes);
    std::ofstream(path, std::ios::binary).write(c.data(), static_cast<std::streamsize>(c.size()));
  };
  write_with(eocd + 16, "\xff\xff\xff\x7f");
  expect_file_error(path, "zip");
  write_with(eocd + 10, "\xff\x7f");
  expect_file_error(path, "corrupt zip");
  const size_t cd = all.find(std::string("PK\x01\x02", 4));
  write_with(cd + 42, "\x10\x00\x00\x00");
  expect_file_error(path, "corrupt zip");
  const size_t pkl = all.find("\x80\x02}", all.find("data.pkl")) + 2;  // pickle bytes after PROTO
  write_with(pkl, std::string(64, '\xfe'));
  expect_file_error(path, "pickle");
  // Not a zip at all.
  std::ofstream(path, std::ios::binary) << "this is not a checkpoint";
  expect_file_error(path, "not a zip");
  // A zip without data.pkl.
  test::write_zip(path, {{"hello.txt", "hi"}});
  expect_file_error(path, "data.pkl");
  // A tensor that reaches past its storage.
  test::PickleWriter p;
  p.op('}').op('(').str("w").float_tensor("0", 4, 2, {2, 2}, {2, 1}).op('u');
  test::write_zip(
      path, {{"archive/data.pkl", p.done()}, {"archive/data/0", test::floats_bytes({1, 2, 3, 4})}});
  expect_file_error(path, "past its storage");
  // A storage missing from the archive.
  test::write_zip(path, {{"archive/data.pkl", p.done()}});
  expect_file_error(path, "missing");
}

TEST(pickle_checkpoint, fixture_ckpt_reads_as_zero_copy_views) {
  const auto sd = read_torch_checkpoint(test::fixture("models/tiny-sd1.ckpt"));
  EXPECT_EQ(sd.size(), 980u);
  const Tensor& w = sd.at("model.diffusion_model.input_blocks.0.0.weight");
  EXPECT_EQ(w.shape(), Shape({32, 4, 3, 3}));
  EXPECT_TRUE(w.is_contiguous());
}

TEST(pickle_checkpoint, random_corruption_never_crashes) {
  // Mutate a small valid checkpoint byte by byte: every outcome is a load or a FileError.
  const std::string good = tmp("fuzz_base.ckpt"), path = tmp("fuzz.ckpt");
  test::write_zip(good, {{"archive/data.pkl", strided_pickle()},
                         {"archive/data/0", test::floats_bytes({0, 1, 2, 3, 4, 5, 6})},
                         {"archive/data/1", test::floats_bytes({42})}});
  std::ifstream in(good, std::ios::binary);
  const std::string base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 rng(1234);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string c = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) c[rng() % c.size()] = static_cast<char>(rng() & 0xFF);
    if (iter % 10 == 0) c.resize(rng() % c.size());
    std::ofstream(path, std::ios::binary).write(c.data(), static_cast<std::streamsize>(c.size()));
    try {
      read_torch_checkpoint(path);
      ++loaded;
    } catch (const FileError&) {
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 3000);
  EXPECT_GT(refused, 0);
}

// --- Released .ckpt files: pytorch_lightning training state next to the state_dict -------------

TEST(pickle_checkpoint, lightning_training_checkpoint_loads_its_state_dict) {
  // Written by tools/reference/make_lightning_ckpt.py with torch.save: ModelCheckpoint (class and
  // instance, through NEWOBJ + BUILD), numpy scalars/arrays/dtypes, _codecs.encode, a set and
  // optimizer tensors around the state_dict. Only the state_dict's tensors come back.
  const std::string path = test::reference("inputs/ckpt/lightning-sd1-tiny.ckpt");
  const nlohmann::json note =
      nlohmann::json::parse(std::ifstream(test::reference("inputs/ckpt/lightning-sd1-tiny.json")));
  const auto sd = read_torch_checkpoint(path);
  ASSERT_EQ(sd.size(), note["state_dict"].size());
  for (const auto& [name, want] : note["state_dict"].items()) {
    ASSERT_TRUE(sd.count(name)) << name;
    const Tensor t = sd.at(name).contiguous();
    Shape shape;
    for (const auto& d : want["shape"]) shape.push_back(d.get<int64_t>());
    EXPECT_EQ(t.shape(), shape) << name;
    const std::string torch_dtype = want["dtype"];
    const DType dtype = torch_dtype == "int64"     ? DType::I64
                        : torch_dtype == "float16" ? DType::F16
                                                   : DType::F32;
    EXPECT_EQ(t.dtype(), dtype) << name;
    if (t.dtype() != DType::F32) continue;
    for (size_t i = 0; i < want["values"].size(); ++i)
      EXPECT_EQ(t.f32()[i], want["values"][i].get<float>()) << name << "[" << i << "]";
  }
  EXPECT_EQ(sd.at("cond_stage_model.transformer.text_model.embeddings.position_ids").numel(), 4);
}

TEST(pickle_checkpoint, training_state_globals_are_inert_and_others_refused) {
  const std::string path = tmp("globals.ckpt");
  // A state_dict value that is a ModelCheckpoint or a numpy scalar is skipped, not loaded.
  test::PickleWriter p;
  p.op('}').op('(').str("state_dict").op('}').op('(');
  p.str("w").float_tensor("0", 2, 0, {2}, {1});
  p.str("cb").global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").op(')');
  p.op('\x81').op('}').op('b');  // NEWOBJ, BUILD with an empty state
  p.str("n").global("numpy.core.multiarray", "scalar").global("numpy", "dtype").str("f8");
  p.op('\x89').op('\x88').op('\x87').op('R').op('N').op('b');
  p.global("_codecs", "encode").str("abcdefgh").str("latin1").op('\x86').op('R');
  p.op('\x86').op('R').op('u').op('u');
  test::write_zip(path,
                  {{"archive/data.pkl", p.done()}, {"archive/data/0", test::floats_bytes({1, 2})}});
  const auto sd = read_torch_checkpoint(path);
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd.at("w").f32()[1], 2);
  // Anything else stays refused, by name, whichever way the pickle names it.
  for (const auto& [module, name] :
       std::vector<std::pair<std::string, std::string>>{{"posix", "system"},
                                                        {"subprocess", "Popen"},
                                                        {"builtins", "exec"},
                                                        {"numpy", "load"},
                                                        {"numpy.core.multiarray", "array"},
                                                        {"pytorch_lightning.callbacks", "os"},
                                                        {"torch", "load"}}) {
    test::PickleWriter q;
    q.op('}').op('(').str("x").global(module, name).op(')').op('R').op('u');
    test::write_zip(path, {{"archive/data.pkl", q.done()}});
    expect_file_error(path, module + "." + name);
  }
}

// --- Hostile nesting ----------------------------------------------------------------------------

namespace {
// {"deep": [[[...]]]} nested `depth` lists deep, written bottom-up as pickle.dump does.
std::string nested_lists(size_t depth) {
  test::PickleWriter p;
  p.op('}').str("deep");
  p.s.append(depth, ']');
  p.s.append(depth - 1, 'a');
  return p.op('s').done();
}
}  // namespace

TEST(pickle_checkpoint, deep_nesting_is_an_error_not_a_stack_overflow) {
  const std::string path = tmp("deep.ckpt");
  for (size_t depth : {size_t{200000}, size_t{1000000}}) {
    test::write_zip(path, {{"archive/data.pkl", nested_lists(depth)}}, true);
    expect_file_error(path, "pickle nests deeper than 1000");
  }
  test::write_zip(path, {{"archive/data.pkl", nested_lists(100)}});
  EXPECT_TRUE(read_torch_checkpoint(path).empty());
}

TEST(pickle_checkpoint, deep_chain_built_through_the_memo_is_freed_without_recursion) {
  // Each new list is appended to the previous one through the memo, top-down: no container ever
  // sees a deep child, so only the destructor meets the 10^6-deep chain.
  test::PickleWriter p;
  p.op('}').str("chain").op(']').put(0);
  for (int k = 0; k < 1000000; ++k) p.get(0).op(']').put(0).op('a').op('0');
  p.op('s');
  const std::string path = tmp("chain.ckpt");
  test::write_zip(path, {{"archive/data.pkl", p.done()}}, true);
  EXPECT_TRUE(read_torch_checkpoint(path).empty());
}

TEST(pickle_checkpoint, reference_cycle_is_refused) {
  const std::string path = tmp("cycle.ckpt");
  test::PickleWriter p;  // l = []; l.append(l)
  p.op('}').str("l").op(']').put(0).get(0).op('a').op('s');
  test::write_zip(path, {{"archive/data.pkl", p.done()}});
  expect_file_error(path, "reference cycle");
  test::PickleWriter q;  // the same cycle, then dropped: still refused (and freed)
  q.op(']').put(0).get(0).op('a').op('0').op('}');
  test::write_zip(path, {{"archive/data.pkl", q.done()}});
  expect_file_error(path, "reference cycle");
  test::PickleWriter r;  // d = OrderedDict(); d["d"] = d: a dict the hooks built
  r.global("collections", "OrderedDict").op(')').op('R').put(0).str("d").get(0).op('s');
  test::write_zip(path, {{"archive/data.pkl", r.done()}});
  expect_file_error(path, "reference cycle");
}

// --- Sizes are checked before anything is inflated
// ------------------------------------------------

TEST(pickle_checkpoint, declared_sizes_are_checked_before_inflating) {
  const std::string path = tmp("bomb.ckpt");
  test::PickleWriter p;
  p.op('}').op('(').str("w").float_tensor("0", 4, 0, {4}, {1}).op('u');
  const std::string pkl = p.done(), data = test::floats_bytes({1, 2, 3, 4});
  // A storage entry declaring (far) more bytes than its elements need.
  std::string zip = test::zip_bytes({{"archive/data.pkl", pkl}, {"archive/data/0", data}}, true);
  test::patch_central(zip, "archive/data/0", test::kCentralSize, 0xF0000000u);
  test::write_file(path, zip);
  expect_file_error(path, "far more than its 4 elements need");
  // data.pkl declaring gigabytes: refused before inflating.
  zip = test::zip_bytes({{"archive/data.pkl", pkl}, {"archive/data/0", data}}, true);
  test::patch_central(zip, "archive/data.pkl", test::kCentralSize, 0xF0000000u);
  test::write_file(path, zip);
  expect_file_error(path, "declares 4026531840 bytes");
  // A header that understates: inflation stops at the declared size.
  zip = test::zip_bytes({{"archive/data.pkl", pkl}, {"archive/data/0", data}}, true);
  test::patch_central(zip, "archive/data.pkl", test::kCentralSize, 10);
  test::write_file(path, zip);
  expect_file_error(path, "does not inflate to 10 bytes");
}

TEST(pickle_checkpoint, only_the_state_dicts_storages_are_read_and_after_the_check) {
  // Storage 1 (optimizer state) is garbage that would not inflate: it is never read. The check
  // sees every tensor's dtype and shape before storage 0 is read.
  test::PickleWriter p;
  p.op('}').op('(').str("state_dict").op('}').op('(').str("w").float_tensor("0", 2, 0, {2}, {1});
  p.op('u').str("optimizer_states").op('}').op('(').str("m").float_tensor("1", 8, 0, {8}, {1});
  p.op('u').op('u');
  std::string zip = test::zip_bytes({{"archive/data.pkl", p.done()},
                                     {"archive/data/0", test::floats_bytes({5, 6})},
                                     {"archive/data/1", std::string(32, '\x55')}},
                                    true);
  const size_t garbage = zip.find(test::raw_deflate(std::string(32, '\x55')));
  ASSERT_NE(garbage, std::string::npos);
  zip[garbage] = '\xff';  // an invalid deflate block type
  const std::string path = tmp("lazy.ckpt");
  test::write_file(path, zip);
  std::map<std::string, TorchTensorInfo> seen;
  const auto sd = read_torch_checkpoint(path, [&](const auto& infos) { seen = infos; });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen.at("w").shape, Shape({2}));
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd.at("w").f32()[1], 6);
  EXPECT_THROW(read_torch_checkpoint(
                   path, [](const auto&) -> void { throw FileError("not a model checkpoint"); }),
               FileError);
}

TEST(pickle_checkpoint, unsafe_member_names_and_out_of_file_entries_are_refused) {
  const std::string path = tmp("paths.ckpt");
  for (const std::string name : {"../evil/data.pkl", "/etc/data.pkl", "archive/../../data.pkl",
                                 "C:\\x\\data.pkl", "archive\\..\\data.pkl"}) {
    test::write_zip(path, {{name, "x"}});
    expect_file_error(path, "unsafe path");
  }
  const std::string pkl = strided_pickle();
  std::string zip = test::zip_bytes({{"archive/data.pkl", pkl}});
  test::patch_central(zip, "archive/data.pkl", test::kCentralLocalOffset, 0x7FFFFFF0u);
  test::write_file(path, zip);
  expect_file_error(path, "runs past the end of the file");
  zip = test::zip_bytes({{"archive/data.pkl", pkl}});
  test::patch_central(zip, "archive/data.pkl", test::kCentralCompressedSize, 0x7FFFFFF0u);
  test::patch_central(zip, "archive/data.pkl", test::kCentralSize, 0x7FFFFFF0u);
  test::write_file(path, zip);
  expect_file_error(path, "runs past the end of the file");
}
