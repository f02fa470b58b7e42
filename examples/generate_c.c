/* Minimal use of the C API.  example_generate_c <model_dir> "<prompt>" out.png */
#include <stdio.h>

#include "diffuse/diffuse.h"

static int on_progress(int step, int total, void* user) {
  (void)user;
  fprintf(stderr, "step %d/%d\n", step, total);
  return 0; /* non-zero cancels */
}

int main(int argc, char** argv) {
  diffuse_pipeline* pipe = NULL;
  diffuse_options* opts = NULL;
  diffuse_result* result = NULL;
  int rc = 1;
  if (argc != 4) {
    fprintf(stderr, "usage: %s <model_dir> <prompt> <out.png>\n", argv[0]);
    return 2;
  }
  if (diffuse_pipeline_load(argv[1], &pipe) != DIFFUSE_OK) goto fail;
  if (diffuse_options_create(&opts) != DIFFUSE_OK) goto fail;
  diffuse_options_set_prompt(opts, argv[2]);
  diffuse_options_set_steps(opts, 20);
  diffuse_options_set_seed(opts, 42);
  if (diffuse_generate(pipe, opts, on_progress, NULL, &result) != DIFFUSE_OK) goto fail;
  if (diffuse_result_save_png(result, 0, argv[3]) != DIFFUSE_OK) goto fail;
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "error: %s\n", diffuse_last_error());
done:
  diffuse_result_free(result);
  diffuse_options_free(opts);
  diffuse_pipeline_free(pipe);
  return rc;
}
