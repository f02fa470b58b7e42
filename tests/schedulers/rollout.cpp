#include "schedulers/rollout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/fixtures.h"
#include "random/random_source.h"
#include "schedulers/scheduler.h"

namespace diffuse::test {

namespace {

// Timesteps are stored as float32 (or int64 in older fixtures); read either as float.
std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  const Tensor c = t.contiguous();
  for (size_t i = 0; i < v.size(); ++i) {
    switch (c.dtype()) {
      case DType::F32:
        v[i] = c.data_as<float>()[i];
        break;
      case DType::F64:
        v[i] = static_cast<float>(c.data_as<double>()[i]);
        break;
      case DType::I64:
        v[i] = static_cast<float>(c.data_as<int64_t>()[i]);
        break;
      case DType::I32:
        v[i] = static_cast<float>(c.data_as<int32_t>()[i]);
        break;
      default:
        ADD_FAILURE() << "unexpected dtype " << c.describe();
        return {};
    }
  }
  return v;
}

void expect_exact(const std::vector<double>& ours, const std::vector<float>& ref, const char* what,
                  const std::string& case_name) {
  ASSERT_EQ(ours.size(), ref.size()) << case_name << ": number of " << what;
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_EQ(static_cast<float>(ours[i]), ref[i])
        << case_name << ": " << what << "[" << i << "] (ours " << ours[i] << ")";
}

// The i-th slice of a stacked [n, ...] tensor.
Tensor slice(const Tensor& stacked, int64_t i) {
  Shape s;
  for (int d = 1; d < stacked.ndim(); ++d) s.push_back(stacked.dim(d));
  return stacked.narrow(0, i, 1).reshape(s);
}

}  // namespace

nlohmann::json golden_scheduler_case(const std::string& case_name) {
  const SafetensorsFile f = golden("sched-" + case_name + ".safetensors");
  return nlohmann::json::parse(f.metadata().at("json"));
}

nlohmann::json golden_scheduler_config(const nlohmann::json& meta) {
  nlohmann::json config = meta.at("config");
  if (meta.contains("eta")) config["eta"] = meta["eta"];
  return config;
}

double check_golden_rollout(const std::string& case_name, double tol) {
  return check_rollout_file(fixture("golden/sched-" + case_name + ".safetensors"), tol);
}

void run_golden_rollout(const std::string& case_name) {
  const double err = check_golden_rollout(case_name);
  std::printf("  %s: max relative error %.3g\n", case_name.c_str(), err);
}

double check_rollout_file(const std::string& path, double tol) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const nlohmann::json meta = nlohmann::json::parse(f.metadata().at("json"));
  const std::string case_name = path.substr(path.find_last_of('/') + 1);

  auto s = make_scheduler(golden_scheduler_config(meta), meta.at("class").get<std::string>());
  s->set_timesteps(meta.at("steps").get<int>());

  expect_exact(s->timesteps(), as_floats(f.get("timesteps")), "timesteps", case_name);
  if (f.contains("sigmas"))
    expect_exact(s->sigmas(), as_floats(f.get("sigmas")), "sigmas", case_name);
  if (meta.contains("init_noise_sigma")) {
    EXPECT_EQ(static_cast<float>(s->init_noise_sigma()), meta["init_noise_sigma"].get<float>())
        << case_name << ": init_noise_sigma";
  }

  const Tensor init = f.get("init").to(DType::F32).contiguous();
  const Tensor fixed = f.get("fixed").to(DType::F32).contiguous();
  const Tensor inputs = f.get("model_inputs").to(DType::F32).contiguous();
  const Tensor trajectory = f.get("trajectory").to(DType::F32).contiguous();
  const auto& ts = s->timesteps();
  if (static_cast<int64_t>(ts.size()) != inputs.dim(0) || trajectory.dim(0) != inputs.dim(0) + 1) {
    ADD_FAILURE() << case_name << ": " << ts.size() << " timesteps vs " << inputs.describe()
                  << " model inputs and " << trajectory.describe() << " trajectory";
    return INFINITY;
  }

  double worst = rel_error(init, slice(trajectory, 0));
  EXPECT_EQ(worst, 0.0) << case_name << ": trajectory[0] is the initial sample";
  auto rng = make_random_source("torch", meta.value("step_generator_seed", 103));
  Tensor x = init.clone();
  for (size_t i = 0; i < ts.size(); ++i) {
    const double t = ts[i];
    const Tensor xin = s->scale_model_input(x, t);
    const double in_err = rel_error(xin, slice(inputs, static_cast<int64_t>(i)));
    EXPECT_LE(in_err, tol) << case_name << ": model input " << i << " (t = " << t << ")";

    // The fake model, in float32 as torch evaluates it.
    Tensor eps = Tensor::empty(x.shape());
    const float a = static_cast<float>(0.3 * std::sin(t / 100.0));
    const float* pin = xin.f32();
    const float* pf = fixed.f32();
    float* pe = eps.f32();
    for (int64_t k = 0; k < eps.numel(); ++k) pe[k] = 0.5f * pin[k] + a * pf[k];

    x = s->step(eps, t, x, rng.get());
    const double x_err = rel_error(x, slice(trajectory, static_cast<int64_t>(i) + 1));
    EXPECT_LE(x_err, tol) << case_name << ": trajectory after step " << i << " (t = " << t << ")";
    worst = std::max({worst, in_err, x_err});
  }
  return worst;
}

}  // namespace diffuse::test
