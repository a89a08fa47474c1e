/* The pod sandbox ("pause") image of the one-node cluster: holds the pod's namespaces
 * and sleeps until SIGTERM or SIGINT. Built with `gcc -static` into a FROM-scratch image
 * by e2e/node/images.sh (no registry to pull one from). */
#include <signal.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  for (;;) pause();
}
