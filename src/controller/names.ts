// Topic name rules, as Kafka's (org.apache.kafka.common.internals.Topic): names become
// directory names (`<topic>-<partition>`) and metric names, hence the small alphabet and
// the length bound.

export const TOPIC_NAME_LENGTH_MAX = 249;
const LEGAL = /^[a-zA-Z0-9._-]+$/;

/** Why `name` is not a legal topic name, or undefined if it is. */
export function topicNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'Topic name must be a string';
  if (name.length === 0) return 'Topic name is illegal, it can\'t be empty';
  if (name === '.' || name === '..') return 'Topic name cannot be "." or ".."';
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    return `Topic name is illegal, it can't be longer than ${TOPIC_NAME_LENGTH_MAX} characters, topic name: ${name.slice(0, 40)}…`;
  }
  if (!LEGAL.test(name)) {
    return `Topic name "${name}" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`;
  }
  return undefined;
}

/**
 * '.' and '_' both become '_' in metric names, so Kafka refuses a topic whose name
 * differs from an existing one only there.
 */
export function unifyCollisionChars(name: string): string {
  return name.replaceAll('.', '_');
}
