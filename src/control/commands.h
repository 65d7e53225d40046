/* The verbs of the tinyedge command (table in src/main.c). Each takes its
 * own argv (argv[0] = the verb) and returns an exit code (TE_EXIT_*). */
#ifndef TE_COMMANDS_H
#define TE_COMMANDS_H

int te_cmd_run(int argc, char **argv);
int te_cmd_check(int argc, char **argv);
int te_cmd_version(int argc, char **argv);
int te_cmd_list(int argc, char **argv);
int te_cmd_stats(int argc, char **argv);
int te_cmd_logs(int argc, char **argv);
int te_cmd_start(int argc, char **argv);
int te_cmd_stop(int argc, char **argv);
int te_cmd_restart(int argc, char **argv);
int te_cmd_module(int argc, char **argv);
int te_cmd_route(int argc, char **argv);
int te_cmd_send(int argc, char **argv);
int te_cmd_call(int argc, char **argv);
int te_cmd_twin(int argc, char **argv);
int te_cmd_queue(int argc, char **argv);
int te_cmd_metrics(int argc, char **argv);
int te_cmd_images(int argc, char **argv);

/* Print the help of one verb to stdout; returns TE_EXIT_OK. */
int te_help(const char *verb);

#endif
