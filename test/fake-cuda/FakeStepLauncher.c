/* A stand-in for an artifact's GPU launcher code (test/unit/CudaProgramTest):
 * one entry point, train_step(w[4], x[4]) -> (loss = sum(w), w' = w + x),
 * computed by the host code itself on the buffers it is handed -- which the
 * fake driver's "device" memory lets it do -- so that aim-run's staging of
 * inputs, results and resident arguments can be checked by value. */
void train_step_packed(void **buffers) {
  const float *w = buffers[0], *x = buffers[1];
  float *loss = buffers[2], *next = buffers[3];
  float sum = 0;
  for (int i = 0; i < 4; ++i) {
    sum += w[i];
    next[i] = w[i] + x[i];
  }
  *loss = sum;
}

/* The same step, its loss raised by 1000 when w' was handed w's buffer: the
 * artifact's in_place_results lets aim-run share it. */
void train_step_in_place_packed(void **buffers) {
  const float *w = buffers[0], *next = buffers[3];
  int shared = next == w;
  train_step_packed(buffers);
  if (shared)
    *(float *)buffers[2] += 1000;
}
