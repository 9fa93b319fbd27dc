/**
 * Nimrod plan files (Nimrod/G and the classic `;`-terminated dialect) → parameter-sweep jobs.
 * Pure: the caller reads the file, supplies the seed and the file lister, and runs the jobs.
 */
export { parsePlan, IMPLICIT_VARIABLES } from './parser.js';
export type { CommandNode, Domain, Location, NumberLit, ParamType, Part, PathRef, Plan, PlanParameter, Pos, Template, ValueLit } from './parser.js';
export { countJobs, expandJobs, mulberry32 } from './expand.js';
export type { Command, CountContext, ExpandOptions, Job, ListFiles } from './expand.js';
