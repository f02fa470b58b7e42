// GET /metrics: Prometheus text exposition of the job service (queue lengths, jobs done and
// failed, denoising steps and seconds: their rate is the step time). Behind the API key, as every
// route but the app shell and /health.
#include "serve/server.h"

namespace diffuse::serve {

void add_metrics_route(Server& server) {
  server.http().Get("/metrics", server.handle([&server](const auto&, auto& res) {
    res.set_content(server.queue().metrics(), "text/plain; version=0.0.4");
  }));
}

}  // namespace diffuse::serve
