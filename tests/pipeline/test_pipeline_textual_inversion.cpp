// Textual inversion against diffusers' load_textual_inversion on tiny-sd1: a two-vector
// embedding in diffusers' layout and a three-vector one in A1111's (token = file stem), with the
// prompt's token ids checked against the reference tokenizer's, plus the errors for embeddings
// that do not fit. References: tools/reference/make_extension_references.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/pipeline_check.h"
#include "common/reference_data.h"
#include "diffuse/diffuse.hpp"
#include "io/safetensors.h"

using namespace diffuse;

namespace {

void check_embedding_case(Pipeline& pipe, const std::string& name) {
  const nlohmann::json meta = test::reference_metadata(name);
  GenerateOptions o = test::options_from_metadata(meta);
  for (const auto& e : meta.at("embeddings"))
    o.embeddings.push_back(
        test::reference_input(e.at("file").get<std::string>(), e.at("root").get<std::string>()));
  test::check_pipeline_reference(pipe, o, test::reference("pipe-" + name + ".safetensors"),
                                 {test::reference(name + "-0.png")}, name);
  // The pipeline now tokenizes with the embeddings' tokens, as diffusers' tokenizer did.
  size_t count = 0;
  EXPECT_EQ(pipe.tokenize(o.prompt, &count), meta.at("input_ids").get<std::vector<int64_t>>());
  EXPECT_EQ(pipe.tokenize(o.negative_prompt.value_or(""), &count),
            meta.at("negative_input_ids").get<std::vector<int64_t>>());
}

}  // namespace

TEST(textual_inversion, diffusers_and_a1111_embeddings_match_diffusers) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  check_embedding_case(*pipe, "ti-diffusers-dpmpp");
  check_embedding_case(*pipe, "ti-a1111-euler");
}

TEST(textual_inversion, embeddings_that_do_not_fit_are_named) {
  auto pipe = Pipeline::load(test::fixture("models/tiny-sd1"));
  GenerateOptions o;
  o.prompt = "x";
  o.steps = 1;
  o.width = o.height = 64;
  o.embeddings = {test::temp_dir() + "/absent.safetensors"};
  test::expect_error_mentioning<FileError>([&] { pipe->generate(o); }, {"absent.safetensors"});
  // An A1111 embedding named after a word of the vocabulary cannot be told from the word.
  const std::string horse = test::temp_dir() + "/horse.safetensors";
  std::filesystem::copy_file(test::reference("inputs/tinystyle.safetensors"), horse,
                             std::filesystem::copy_options::overwrite_existing);
  o.embeddings = {horse};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"horse.safetensors", "vocabulary"});
  // An embedding for a wider text encoder.
  const std::string wide = test::temp_dir() + "/wide.safetensors";
  std::vector<float> v(2 * 48, 0.5f);
  write_safetensors(wide, {{"<wide>", Tensor::from_floats(v.data(), {2, 48})}});
  o.embeddings = {wide};
  test::expect_error_mentioning<ConfigError>([&] { pipe->generate(o); },
                                             {"wide.safetensors", "another text encoder"});
  // The pipeline is unchanged by the failures.
  o.embeddings.clear();
  EXPECT_EQ(pipe->generate(o).images.size(), 1u);
}
